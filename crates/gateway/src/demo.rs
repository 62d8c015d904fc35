//! The demo tenant loaded by `chathub serve --demo`: agents, an admin, end users with
//! profiles and engagement history, a catalogue of every engagement type, canned
//! responses, and one conversation already waiting in the queue.

use crate::auth::now_millis;
use crate::backend::Backend;
use chathub_domain::canned::CannedResponse;
use chathub_domain::engagement::{
    CatalogueItem, EligibilityRules, EngagementType, HistoryAction, HistoryEvent, Profile,
};
use chathub_domain::{
    Actor, Command, Context, ConversationId, EndUserId, MessageContent, TenantId,
};
use chathub_ownership::{ApplyRequest, Ownership};
use chathub_store::WorkspaceStore;

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

/// Loads the demo tenant into `backend` (idempotent: loading twice changes nothing).
pub async fn load<K: Backend>(backend: &K) -> Result<(), String> {
    let t = TenantId::new(TENANT).map_err(|e| e.to_string())?;
    let ws = backend.workspace();
    let now = now_millis();
    let err = |e: chathub_store::StoreError| e.to_string();
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
    for i in catalogue {
        ws.upsert_item(&t, i).await.map_err(err)?;
    }
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
    for (user, profile) in profiles {
        let user = EndUserId::new(user).map_err(|e| e.to_string())?;
        ws.upsert_profile(&t, &user, profile).await.map_err(err)?;
    }
    let ana = EndUserId::new("u-ana").map_err(|e| e.to_string())?;
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
    for (id, t_, action, engagement, title, points, ago) in history {
        let event = HistoryEvent {
            id: id.into(),
            engagement_type: t_,
            action,
            engagement: engagement.map(Into::into),
            title: title.into(),
            points,
            at: now - ago,
        };
        ws.add_history(&t, &ana, event).await.map_err(err)?;
    }
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
    for (id, shortcut, text) in canned {
        ws.upsert_canned(
            &t,
            CannedResponse {
                id: id.into(),
                shortcut: shortcut.into(),
                text: text.into(),
            },
        )
        .await
        .map_err(err)?;
    }
    // A conversation waiting in the queue (idempotent by its client_msg_id).
    let request = ApplyRequest {
        tenant: t.clone(),
        conversation: ConversationId::of_end_user(&ana),
        actor: Actor::EndUser(ana.clone()),
        command: Command::Send {
            content: MessageContent::Text {
                text: "Hi! My spring coupon doesn't work at checkout.".into(),
            },
            client_msg_id: Some("demo-1".into()),
            seen_epoch: None,
        },
        at: now,
        context: Context::default(),
    };
    backend
        .ownership()
        .apply(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A ready-to-use token for one person of the demo tenant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoPerson {
    /// `end_user`, `agent` or `admin`.
    pub role: &'static str,
    /// The person's id (for end users, also their conversation's id).
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// A signed token, valid for `ttl_secs`.
    pub token: String,
}

/// Mints a token for every person of the demo tenant, valid `ttl_secs`: printed by
/// `serve --demo` and offered by the console's one-click demo sign-in.
pub fn people(
    auth: &crate::Authenticator,
    ttl_secs: u64,
) -> Result<Vec<DemoPerson>, crate::AuthError> {
    use chathub_domain::Role;
    let mut people: Vec<(Role, &'static str, &'static str)> = Vec::new();
    for (id, name) in AGENTS {
        people.push((Role::Agent, id, name));
    }
    people.push((Role::Admin, ADMIN.0, ADMIN.1));
    for (id, name) in END_USERS {
        people.push((Role::EndUser, id, name));
    }
    people
        .into_iter()
        .map(|(role, id, name)| {
            let token = auth.mint_named(TENANT, id, role, None, ttl_secs, Some(name.to_owned()))?;
            Ok(DemoPerson {
                role: role.as_str(),
                id,
                name,
                token,
            })
        })
        .collect()
}
