//! Redis keys built from distinct ids are distinct: every id inside a key is escaped
//! (ids may hold `:`, the separator), dedup keys carry the author's role, and no user's
//! engagement-history index is another user's index of one type.

#![allow(clippy::unwrap_used)]

use chathub_domain::engagement::EngagementType;
use chathub_domain::{AgentId, ConversationId, EndUserId, Participant, TenantId};
use chathub_store::RedisKeys;
use proptest::prelude::*;

/// Ids over the whole allowed alphabet, `:` and `%`-like runs included.
fn id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9:._@%-]{1,12}"
        .prop_filter("a valid id", |s| chathub_domain::ids::validate(s).is_ok())
}

fn author() -> impl Strategy<Value = Participant> {
    (any::<bool>(), id()).prop_map(|(agent, id)| {
        if agent {
            Participant::agent(&AgentId::new(id).unwrap())
        } else {
            Participant::end_user(&EndUserId::new(id).unwrap())
        }
    })
}

proptest! {
    #[test]
    fn dedup_keys_of_distinct_sends_differ(
        a in author(), b in author(), x in id(), y in id()
    ) {
        let keys = RedisKeys::new("k");
        let t = TenantId::new("t").unwrap();
        let c = ConversationId::new("c").unwrap();
        if (&a, &x) != (&b, &y) {
            prop_assert_ne!(keys.dedup(&t, &c, &a, &x), keys.dedup(&t, &c, &b, &y));
        }
    }

    #[test]
    fn engagement_indexes_of_distinct_users_or_types_differ(
        u in id(), v in id(), k in 0usize..6, l in 0usize..7
    ) {
        let keys = RedisKeys::new("k");
        let t = TenantId::new("t").unwrap();
        let kinds = EngagementType::ALL;
        let of = |i: usize| kinds.get(i).copied();
        let (u, v) = (EndUserId::new(u).unwrap(), EndUserId::new(v).unwrap());
        if (&u, of(k)) != (&v, of(l)) {
            prop_assert_ne!(
                keys.engagement_index(&t, &u, of(k)),
                keys.engagement_index(&t, &v, of(l))
            );
        }
        if u != v {
            prop_assert_ne!(keys.engagement_history(&t, &u), keys.engagement_history(&t, &v));
            prop_assert_ne!(keys.redeemed(&t, &u), keys.redeemed(&t, &v));
        }
    }
}

#[test]
fn the_collisions_found_by_hand_are_gone() {
    let keys = RedisKeys::new("k");
    let t = TenantId::new("t").unwrap();
    let c = ConversationId::new("u-1").unwrap();
    let agent = |s: &str| Participant::agent(&AgentId::new(s).unwrap());
    // An agent whose id is the end user's, with the same client_msg_id.
    let user = Participant::end_user(&EndUserId::new("u-1").unwrap());
    assert_ne!(
        keys.dedup(&t, &c, &agent("u-1"), "m-1"),
        keys.dedup(&t, &c, &user, "m-1")
    );
    // `ag` + `b:c` against `ag:b` + `c`.
    assert_ne!(
        keys.dedup(&t, &c, &agent("ag"), "b:c"),
        keys.dedup(&t, &c, &agent("ag:b"), "c")
    );
    // User `h:coupon`'s index of every type against user `h`'s coupon index.
    let h_coupon = EndUserId::new("h:coupon").unwrap();
    let h = EndUserId::new("h").unwrap();
    assert_ne!(
        keys.engagement_index(&t, &h_coupon, None),
        keys.engagement_index(&t, &h, Some(EngagementType::Coupon))
    );
}
