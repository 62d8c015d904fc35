//! The MessagePack decoder, client and server side: any bytes give a value or an error, never a
//! panic; whatever decodes re-encodes and decodes to the same value.
#![no_main]

use chathub_protocol::Codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Codec::MsgPack.decode_request(data) {
        let bytes = Codec::MsgPack
            .encode_request(&request)
            .expect("a decoded request encodes");
        let again = Codec::MsgPack
            .decode_request(&bytes)
            .expect("re-encoded request decodes");
        assert_eq!(again, request);
    }
    if let Ok(frame) = Codec::MsgPack.decode_server(data) {
        let bytes = Codec::MsgPack
            .encode_server(&frame)
            .expect("a decoded frame encodes");
        let again = Codec::MsgPack
            .decode_server(&bytes)
            .expect("re-encoded frame decodes");
        assert_eq!(again, frame);
    }
});
