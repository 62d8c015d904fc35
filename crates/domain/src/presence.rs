//! Availability of agents (and liveness of end users) across all their devices.

use serde::{Deserialize, Serialize};

/// What a person's sessions say about their availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Taking conversations.
    Available,
    /// Connected but not taking conversations.
    Away,
    /// No live session.
    Offline,
}

impl Presence {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }

    /// Parses a wire name; anything unknown is `Offline`.
    pub fn parse(s: &str) -> Presence {
        match s {
            "available" => Presence::Available,
            "away" => Presence::Away,
            _ => Presence::Offline,
        }
    }

    /// The availability of a person whose live sessions say `each`: available if any
    /// device is, away if devices are connected but none is available, offline without
    /// any.
    pub fn aggregate(each: impl IntoIterator<Item = Presence>) -> Presence {
        each.into_iter()
            .fold(Presence::Offline, |acc, p| match (acc, p) {
                (Presence::Available, _) | (_, Presence::Available) => Presence::Available,
                (Presence::Away, _) | (_, Presence::Away) => Presence::Away,
                _ => Presence::Offline,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregation_over_devices() {
        use Presence::*;
        assert_eq!(Presence::aggregate([]), Offline);
        assert_eq!(Presence::aggregate([Away, Available]), Available);
        assert_eq!(Presence::aggregate([Away, Away]), Away);
        assert_eq!(Presence::parse("away"), Away);
        assert_eq!(Presence::parse("?"), Offline);
    }
}
