//! Engagements: what a brand gives its end users (coupons, points, messages, chatbots,
//! promos), who is entitled to which now, and the end user's engagement history. Pure:
//! the stores keep the data, the rules are here.

use serde::{Deserialize, Serialize};

/// Largest magnitude of a points value or a count the API takes: 2^53 − 1, the largest
/// integer every JSON client (JavaScript's numbers) reads exactly.
pub const MAX_NUMBER: u64 = 9_007_199_254_740_991;

/// Latest time the API takes, ms since the Unix epoch: 9999-12-31T23:59:59.999Z (the
/// last instant every date renderer prints).
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// The kind of an engagement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EngagementType {
    /// A coupon to redeem.
    Coupon,
    /// Loyalty points.
    Points,
    /// A rich message.
    Message,
    /// A chatbot flow.
    Chatbot,
    /// A promotion.
    Promo,
}

impl EngagementType {
    /// Every type.
    pub const ALL: [EngagementType; 5] = [
        EngagementType::Coupon,
        EngagementType::Points,
        EngagementType::Message,
        EngagementType::Chatbot,
        EngagementType::Promo,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EngagementType::Coupon => "coupon",
            EngagementType::Points => "points",
            EngagementType::Message => "message",
            EngagementType::Chatbot => "chatbot",
            EngagementType::Promo => "promo",
        }
    }
}

/// Who may get a catalogue item.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EligibilityRules {
    /// The end user needs at least this many points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64))]
    pub min_points: Option<i64>,
    /// The end user must be in one of these segments (empty: everyone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<String>,
    /// Each end user may redeem it once.
    #[serde(default)]
    pub once_per_user: bool,
    /// Redemptions left (absent: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 9_007_199_254_740_991_u64))]
    pub stock: Option<u64>,
}

/// One engagement of a tenant's catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogueItem {
    /// Id, unique in the tenant (1–64 characters of `A-Z a-z 0-9 - _ . : @`).
    pub id: String,
    /// Kind.
    #[serde(rename = "type")]
    pub engagement_type: EngagementType,
    /// Title shown to agents and end users.
    pub name: String,
    /// Longer description.
    #[serde(default)]
    pub description: String,
    /// Valid from (ms since the Unix epoch; absent: always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 253_402_300_799_999_u64))]
    pub valid_from: Option<u64>,
    /// Valid until (ms since the Unix epoch; absent: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 253_402_300_799_999_u64))]
    pub valid_until: Option<u64>,
    /// Eligibility.
    #[serde(default)]
    pub rules: EligibilityRules,
}

/// An end user's profile, as the brand's systems know it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    /// First name.
    #[serde(default)]
    pub first_name: String,
    /// Last name.
    #[serde(default)]
    pub last_name: String,
    /// Locale, e.g. `en-GB`.
    #[serde(default)]
    pub locale: String,
    /// Loyalty points balance.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64))]
    pub points_balance: i64,
    /// Segments the user belongs to.
    #[serde(default)]
    pub segments: Vec<String>,
}

/// What happened in one engagement history event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HistoryAction {
    /// The user received an engagement (e.g. sent through the chat).
    Received,
    /// The user redeemed a coupon (or other redeemable engagement).
    Redeemed,
    /// The user earned points.
    Earned,
    /// The user interacted with a chatbot.
    Interacted,
    /// The user viewed a promo or message.
    Viewed,
}

/// One event of an end user's engagement history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEvent {
    /// Unique id of the event (idempotent upserts).
    pub id: String,
    /// Engagement type.
    #[serde(rename = "type")]
    pub engagement_type: EngagementType,
    /// What happened.
    pub action: HistoryAction,
    /// The catalogue item, if the event concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement: Option<String>,
    /// Title to show.
    #[serde(default)]
    pub title: String,
    /// Points earned or spent, for points events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64))]
    pub points: Option<i64>,
    /// When, ms since the Unix epoch.
    #[cfg_attr(feature = "openapi", schema(maximum = 253_402_300_799_999_u64))]
    pub at: u64,
}

/// Why an end user is not entitled to an engagement now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ineligible {
    /// Before `valid_from`.
    NotYetValid,
    /// After `valid_until`.
    Expired,
    /// Points balance under `min_points`.
    InsufficientPoints,
    /// Not in any of the item's segments.
    NotInSegment,
    /// Once per user, and already redeemed.
    AlreadyRedeemed,
    /// No stock left.
    OutOfStock,
}

impl Ineligible {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Ineligible::NotYetValid => "not_yet_valid",
            Ineligible::Expired => "expired",
            Ineligible::InsufficientPoints => "insufficient_points",
            Ineligible::NotInSegment => "not_in_segment",
            Ineligible::AlreadyRedeemed => "already_redeemed",
            Ineligible::OutOfStock => "out_of_stock",
        }
    }
}

/// Whether the user with `profile`, who has (`already_redeemed`) or has not redeemed the
/// item before, is entitled to `item` at time `now` (ms).
pub fn entitlement(
    item: &CatalogueItem,
    profile: &Profile,
    already_redeemed: bool,
    now: u64,
) -> Result<(), Ineligible> {
    if item.valid_from.is_some_and(|from| now < from) {
        return Err(Ineligible::NotYetValid);
    }
    if item.valid_until.is_some_and(|until| now > until) {
        return Err(Ineligible::Expired);
    }
    let rules = &item.rules;
    if rules
        .min_points
        .is_some_and(|min| profile.points_balance < min)
    {
        return Err(Ineligible::InsufficientPoints);
    }
    if !rules.segments.is_empty() && !rules.segments.iter().any(|s| profile.segments.contains(s)) {
        return Err(Ineligible::NotInSegment);
    }
    if rules.once_per_user && already_redeemed {
        return Err(Ineligible::AlreadyRedeemed);
    }
    if rules.stock == Some(0) {
        return Err(Ineligible::OutOfStock);
    }
    Ok(())
}

/// The action a redemption records for an engagement type.
pub fn redeem_action(t: EngagementType) -> HistoryAction {
    match t {
        EngagementType::Coupon | EngagementType::Promo => HistoryAction::Redeemed,
        EngagementType::Points => HistoryAction::Earned,
        EngagementType::Chatbot => HistoryAction::Interacted,
        EngagementType::Message => HistoryAction::Viewed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coupon() -> CatalogueItem {
        CatalogueItem {
            id: "c1".into(),
            engagement_type: EngagementType::Coupon,
            name: "10% off".into(),
            description: String::new(),
            valid_from: Some(100),
            valid_until: Some(200),
            rules: EligibilityRules {
                min_points: Some(50),
                segments: vec!["gold".into(), "silver".into()],
                once_per_user: true,
                stock: Some(3),
            },
        }
    }

    fn gold(points: i64) -> Profile {
        Profile {
            points_balance: points,
            segments: vec!["gold".into()],
            ..Profile::default()
        }
    }

    #[test]
    fn every_rule_is_checked() {
        let item = coupon();
        assert_eq!(entitlement(&item, &gold(60), false, 150), Ok(()));
        assert_eq!(
            entitlement(&item, &gold(60), false, 50),
            Err(Ineligible::NotYetValid)
        );
        assert_eq!(
            entitlement(&item, &gold(60), false, 250),
            Err(Ineligible::Expired)
        );
        assert_eq!(
            entitlement(&item, &gold(10), false, 150),
            Err(Ineligible::InsufficientPoints)
        );
        let bronze = Profile {
            segments: vec!["bronze".into()],
            points_balance: 99,
            ..Profile::default()
        };
        assert_eq!(
            entitlement(&item, &bronze, false, 150),
            Err(Ineligible::NotInSegment)
        );
        assert_eq!(
            entitlement(&item, &gold(60), true, 150),
            Err(Ineligible::AlreadyRedeemed)
        );
        let sold_out = CatalogueItem {
            rules: EligibilityRules {
                stock: Some(0),
                ..item.rules.clone()
            },
            ..item.clone()
        };
        assert_eq!(
            entitlement(&sold_out, &gold(60), false, 150),
            Err(Ineligible::OutOfStock)
        );
        let open = CatalogueItem {
            valid_from: None,
            valid_until: None,
            rules: EligibilityRules::default(),
            ..item
        };
        assert_eq!(entitlement(&open, &Profile::default(), true, 0), Ok(()));
    }

    #[test]
    fn wire_names() {
        let json = serde_json::to_string(&coupon()).unwrap();
        assert!(json.contains(r#""type":"coupon""#), "{json}");
        let back: CatalogueItem = serde_json::from_str(&json).unwrap();
        assert_eq!(back, coupon());
        let minimal: CatalogueItem =
            serde_json::from_str(r#"{"id":"p","type":"promo","name":"Spring"}"#).unwrap();
        assert_eq!(minimal.rules, EligibilityRules::default());
    }
}
