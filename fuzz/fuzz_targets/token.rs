//! Token parsing: any string is a token or a refusal (401), never a panic; a refusal is
//! one of the documented reasons.
#![no_main]

use chathub_gateway::{AuthConfig, AuthError, Authenticator};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    let auth = AUTH.get_or_init(|| {
        Authenticator::new(&AuthConfig {
            verify_secrets: vec!["second-key".into()],
            ..AuthConfig::default()
        })
    });
    let token = String::from_utf8_lossy(data);
    match auth.verify(&token) {
        Ok(identity) => assert!(!identity.subject.is_empty()),
        Err(AuthError::Expired | AuthError::Invalid) => {}
        Err(other) => panic!("unexpected refusal {other:?}"),
    }
});
