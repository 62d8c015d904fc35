//! Canned responses: per-tenant snippets agents send with a shortcut, with placeholders
//! filled on the server from the end user's profile.

use crate::engagement::Profile;
use serde::{Deserialize, Serialize};

/// One canned response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CannedResponse {
    /// Id, unique in the tenant.
    pub id: String,
    /// Shortcut agents type, e.g. `/hello`.
    pub shortcut: String,
    /// Text with placeholders: `{first_name}`, `{last_name}`, `{agent_name}`,
    /// `{points_balance}`, `{locale}`.
    pub text: String,
}

/// Every placeholder [`fill`] knows.
pub const PLACEHOLDERS: [&str; 5] = [
    "{first_name}",
    "{last_name}",
    "{agent_name}",
    "{points_balance}",
    "{locale}",
];

/// `text` with its placeholders filled. Unknown `{…}` stay as they are; a missing value
/// (e.g. no first name on file) becomes empty.
pub fn fill(text: &str, profile: &Profile, agent_name: &str) -> String {
    text.replace("{first_name}", &profile.first_name)
        .replace("{last_name}", &profile.last_name)
        .replace("{agent_name}", agent_name)
        .replace("{points_balance}", &profile.points_balance.to_string())
        .replace("{locale}", &profile.locale)
}

/// Whether `canned` matches a search: its shortcut starts with `query` (a leading `/`
/// optional) or its text contains it, ignoring case. An empty query matches everything.
pub fn matches(canned: &CannedResponse, query: &str) -> bool {
    let q = query.trim().trim_start_matches('/').to_lowercase();
    q.is_empty()
        || canned
            .shortcut
            .trim_start_matches('/')
            .to_lowercase()
            .starts_with(&q)
        || canned.text.to_lowercase().contains(&q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_from_the_profile() {
        let p = Profile {
            first_name: "Ana".into(),
            points_balance: 120,
            ..Profile::default()
        };
        assert_eq!(
            fill(
                "Hi {first_name}, I'm {agent_name}. You have {points_balance} points. {unknown}",
                &p,
                "Alice"
            ),
            "Hi Ana, I'm Alice. You have 120 points. {unknown}"
        );
        assert_eq!(fill("Hi {first_name}!", &Profile::default(), "A"), "Hi !");
    }

    #[test]
    fn search_by_shortcut_or_text() {
        let c = CannedResponse {
            id: "1".into(),
            shortcut: "/hello".into(),
            text: "Hello there".into(),
        };
        assert!(matches(&c, "/he"));
        assert!(matches(&c, "hel"));
        assert!(matches(&c, "THERE"));
        assert!(matches(&c, ""));
        assert!(!matches(&c, "bye"));
    }
}
