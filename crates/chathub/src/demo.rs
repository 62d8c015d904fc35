//! The demo tenant loaded by `chathub serve --demo`: agents, an admin, end users with
//! profiles and engagement history, a catalogue of every engagement type, canned
//! responses, and one conversation already waiting in the queue — as a
//! [`Seed`] the gateway loads.

use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{
    CatalogueItem, EligibilityRules, EngagementType, HistoryAction, HistoryEvent, Profile,
};
use chathub_domain::{EndUserId, IdError, Role, TenantId};
use chathub_gateway::seed::{Seed, SeedPerson};

/// The demo tenant's id.
pub const TENANT: &str = "demo";
/// Demo agents: (id, display name).
pub const AGENTS: [(&str, &str); 2] = [("alice", "Alice"), ("bob", "Bob")];
/// The demo admin: (id, display name).
pub const ADMIN: (&str, &str) = ("carol", "Carol");
/// Demo end users: (id, first name).
pub const END_USERS: [(&str, &str); 3] = [("u-ana", "Ana"), ("u-ben", "Ben"), ("u-chen", "Chen")];

const DAY: u64 = 24 * 3600 * 1000;

/// How long the demo tokens are valid, seconds (a week).
pub const TOKEN_TTL_SECS: u64 = 7 * 24 * 3600;

fn item(
    id: &str,
    t: EngagementType,
    name: &str,
    description: &str,
    rules: EligibilityRules,
    valid_until: Option<u64>,
) -> CatalogueItem {
    CatalogueItem {
        id: id.into(),
        engagement_type: t,
        name: name.into(),
        description: description.into(),
        valid_from: None,
        valid_until,
        rules,
    }
}

/// The demo tenant, with its times relative to `now` (ms since the Unix epoch).
pub fn seed(now: u64) -> Result<Seed, IdError> {
    let catalogue = [
        item(
            "spring-10",
            EngagementType::Coupon,
            "10% off everything",
            "Spring sale coupon, one per customer",
            EligibilityRules {
                once_per_user: true,
                stock: Some(500),
                ..Default::default()
            },
            Some(now + 30 * DAY),
        ),
        item(
            "gold-25",
            EngagementType::Coupon,
            "25% off for Gold members",
            "Gold segment only, 200 points minimum",
            EligibilityRules {
                min_points: Some(200),
                segments: vec!["gold".into()],
                once_per_user: true,
                ..Default::default()
            },
            Some(now + 30 * DAY),
        ),
        item(
            "winter-5",
            EngagementType::Coupon,
            "5% winter coupon",
            "Last season's coupon",
            EligibilityRules::default(),
            Some(now - DAY),
        ),
        item(
            "bonus-50",
            EngagementType::Points,
            "50 bonus points",
            "A thank-you for your patience",
            EligibilityRules::default(),
            None,
        ),
        item(
            "welcome-msg",
            EngagementType::Message,
            "Welcome message",
            "How to get the most out of the app",
            EligibilityRules::default(),
            None,
        ),
        item(
            "size-bot",
            EngagementType::Chatbot,
            "Size assistant",
            "Find your size in three questions",
            EligibilityRules::default(),
            None,
        ),
        item(
            "summer-promo",
            EngagementType::Promo,
            "Summer collection preview",
            "Early access to the summer collection",
            EligibilityRules {
                segments: vec!["gold".into(), "silver".into()],
                ..Default::default()
            },
            Some(now + 60 * DAY),
        ),
    ];
    let profiles = [
        (
            "u-ana",
            Profile {
                first_name: "Ana".into(),
                last_name: "Silva".into(),
                locale: "pt-PT".into(),
                points_balance: 340,
                segments: vec!["gold".into()],
            },
        ),
        (
            "u-ben",
            Profile {
                first_name: "Ben".into(),
                last_name: "Okafor".into(),
                locale: "en-GB".into(),
                points_balance: 40,
                segments: vec!["silver".into()],
            },
        ),
        (
            "u-chen",
            Profile {
                first_name: "Chen".into(),
                last_name: "Wei".into(),
                locale: "zh-CN".into(),
                points_balance: 0,
                segments: vec![],
            },
        ),
    ];
    let profiles = profiles
        .into_iter()
        .map(|(user, profile)| Ok((EndUserId::new(user)?, profile)))
        .collect::<Result<Vec<_>, IdError>>()?;
    let ana = EndUserId::new("u-ana")?;
    let history = [
        (
            "h1",
            EngagementType::Points,
            HistoryAction::Earned,
            None,
            "Purchase in store",
            Some(120),
            20 * DAY,
        ),
        (
            "h2",
            EngagementType::Coupon,
            HistoryAction::Redeemed,
            Some("autumn-15"),
            "15% autumn coupon",
            None,
            15 * DAY,
        ),
        (
            "h3",
            EngagementType::Promo,
            HistoryAction::Viewed,
            Some("summer-promo"),
            "Summer collection preview",
            None,
            9 * DAY,
        ),
        (
            "h4",
            EngagementType::Chatbot,
            HistoryAction::Interacted,
            Some("size-bot"),
            "Size assistant",
            None,
            4 * DAY,
        ),
        (
            "h5",
            EngagementType::Message,
            HistoryAction::Received,
            Some("welcome-msg"),
            "Welcome message",
            None,
            2 * DAY,
        ),
        (
            "h6",
            EngagementType::Points,
            HistoryAction::Earned,
            None,
            "Online order",
            Some(80),
            DAY,
        ),
    ];
    let history = history
        .into_iter()
        .map(|(id, kind, action, engagement, title, points, ago)| {
            let event = HistoryEvent {
                id: id.into(),
                engagement_type: kind,
                action,
                engagement: engagement.map(Into::into),
                title: title.into(),
                points,
                at: now - ago,
            };
            (ana.clone(), event)
        })
        .collect();
    let canned = [
        (
            "hello",
            "/hello",
            "Hi {first_name}, I'm {agent_name}. How can I help you today?",
        ),
        (
            "points",
            "/points",
            "You have {points_balance} points, {first_name}.",
        ),
        (
            "thanks",
            "/thanks",
            "Thank you, {first_name}! Anything else I can do for you?",
        ),
        ("bye", "/bye", "Have a great day, {first_name}!"),
    ];
    let canned = canned
        .into_iter()
        .map(|(id, shortcut, text)| CannedResponse {
            id: id.into(),
            shortcut: shortcut.into(),
            text: text.into(),
        })
        .collect();
    let mut people: Vec<SeedPerson> = AGENTS
        .iter()
        .map(|(id, name)| person(Role::Agent, id, name))
        .collect();
    people.push(person(Role::Admin, ADMIN.0, ADMIN.1));
    people.extend(
        END_USERS
            .iter()
            .map(|(id, name)| person(Role::EndUser, id, name)),
    );
    Ok(Seed {
        tenant: TenantId::new(TENANT)?,
        people,
        token_ttl_secs: TOKEN_TTL_SECS,
        catalogue: catalogue.into(),
        profiles,
        history,
        canned,
        // A conversation waiting in the queue (idempotent by its client_msg_id).
        waiting: vec![(
            ana,
            "demo-1".into(),
            "Hi! My spring coupon doesn't work at checkout.".into(),
        )],
    })
}

fn person(role: Role, id: &str, name: &str) -> SeedPerson {
    SeedPerson {
        role,
        id: id.into(),
        name: name.into(),
    }
}
