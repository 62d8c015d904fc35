//! Alerts of the tenant's alert schedule, fenced against takes.
//!
//! An alert is decided and published in one atomic step against the tenant's queue
//! entry of the conversation (the inbox view the agents' consoles follow), with the
//! marks of what was sent: on a Redis (single or Cluster) one script in the tenant's
//! slot (`lua/alert.lua`: the queue entry, the marks and the agents' own channels all
//! live there), in the memory twin under the conversation's lock. A take updates that
//! entry and publishes its queue frame in its own atomic step (on a Cluster the second
//! step, which a take's acknowledgement waits for), so every alert is ordered before
//! the take's queue frame on every node, or is not sent at all. The taker's session
//! drops an alert still in flight when its take's answer came first (the gateway's
//! fence, by `seq`).
//!
//! Marks are per conversation: the unanswered cycle (epoch and `since`) they are about
//! and, per step, the latest occurrence sent, so each occurrence is sent once however
//! many nodes or rounds decide it, and a node that dies after the step loses nothing
//! the step did.

use chathub_domain::{AgentId, ConversationId, TenantId};
use chathub_protocol::AlertFrame;
use std::collections::HashMap;

/// Alerts due for one conversation, decided together.
#[derive(Debug, Clone)]
pub struct AlertRequest {
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation.
    pub conversation: ConversationId,
    /// The unanswered cycle the caller saw: its epoch.
    pub epoch: u64,
    /// The unanswered cycle the caller saw: when it entered the queue (ms).
    pub since: u64,
    /// How many steps the tenant's schedule has (marks keep one slot per step).
    pub steps: u32,
    /// The occurrences due, at most one per step.
    pub due: Vec<AlertDue>,
}

/// One occurrence of one step, and whose devices get it.
#[derive(Debug, Clone)]
pub struct AlertDue {
    /// The frame (its `step` and `occurrence` say which).
    pub frame: AlertFrame,
    /// The agents whose devices get the frame (those with a live session).
    pub online: Vec<AgentId>,
}

/// What was sent for one conversation's current unanswered cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMarks {
    /// The cycle: its epoch.
    pub epoch: u64,
    /// The cycle: when it entered the queue (ms).
    pub since: u64,
    /// Per step, the latest occurrence sent (`None`: none yet).
    pub sent: Vec<Option<u32>>,
}

impl AlertMarks {
    /// Whether occurrence `k` of `step` is still to send for the cycle `(epoch, since)`.
    pub fn owes(&self, epoch: u64, since: u64, step: u32, k: u32) -> bool {
        if (self.epoch, self.since) != (epoch, since) {
            return true;
        }
        self.sent
            .get(step as usize)
            .copied()
            .flatten()
            .is_none_or(|sent| sent < k)
    }

    /// Marks encoded as `lua/alert.lua` keeps them: `epoch:since:k0,k1,…` (-1: none).
    pub fn encode(&self) -> String {
        let sent: Vec<String> = self
            .sent
            .iter()
            .map(|k| k.map_or_else(|| "-1".to_owned(), |k| k.to_string()))
            .collect();
        format!("{}:{}:{}", self.epoch, self.since, sent.join(","))
    }

    /// Marks as `lua/alert.lua` keeps them; `None` when unreadable.
    pub fn decode(s: &str) -> Option<AlertMarks> {
        let mut parts = s.splitn(3, ':');
        let epoch = parts.next()?.parse().ok()?;
        let since = parts.next()?.parse().ok()?;
        let sent = parts
            .next()?
            .split(',')
            .filter(|k| !k.is_empty())
            .map(|k| match k.parse::<i64>() {
                Ok(k) if k >= 0 => u32::try_from(k).ok(),
                _ => None,
            })
            .collect();
        Some(AlertMarks { epoch, since, sent })
    }

    /// The marks after sending `due` (each step's occurrence) for the cycle, from
    /// `previous` (kept when about the same cycle).
    pub fn after(previous: Option<&AlertMarks>, epoch: u64, since: u64, steps: u32) -> AlertMarks {
        match previous {
            Some(p) if (p.epoch, p.since) == (epoch, since) => {
                let mut marks = p.clone();
                marks.sent.resize(steps as usize, None);
                marks
            }
            _ => AlertMarks {
                epoch,
                since,
                sent: vec![None; steps as usize],
            },
        }
    }
}

/// Every conversation's marks of one tenant.
pub type TenantAlertMarks = HashMap<ConversationId, AlertMarks>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_owe_only_newer_occurrences() {
        let marks = AlertMarks {
            epoch: 3,
            since: 1_700_000_000_000,
            sent: vec![Some(2), None, Some(0)],
        };
        let text = marks.encode();
        assert_eq!(text, "3:1700000000000:2,-1,0");
        assert_eq!(AlertMarks::decode(&text), Some(marks.clone()));
        assert!(!marks.owes(3, 1_700_000_000_000, 0, 2));
        assert!(marks.owes(3, 1_700_000_000_000, 0, 3));
        assert!(marks.owes(3, 1_700_000_000_000, 1, 0));
        // Another cycle owes everything.
        assert!(marks.owes(4, 1_700_000_000_000, 0, 0));
        assert!(marks.owes(3, 1_700_000_000_001, 2, 0));
        assert_eq!(AlertMarks::decode("garbage"), None);
    }
}
