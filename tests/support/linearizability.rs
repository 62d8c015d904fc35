//! A linearizability checker for one conversation's ownership history (the
//! Wing–Gong search with memoization, as in Porcupine): is there an order of the
//! operations, consistent with real time (an operation that returned before another was
//! called comes first), in which the sequential state machine gives every operation the
//! answer it actually got? Operations whose outcome is unknown (a timeout: the command may
//! or may not have been applied, possibly later) may take effect at any point after their
//! call, or never.

use std::collections::HashSet;
use std::time::Instant;

/// The conversation as the sequential model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Model {
    /// 0 new, 1 unanswered, 2 active, 3 finished.
    pub status: u8,
    /// The owning agent (index), when active.
    pub owner: Option<u16>,
    /// Ownership epoch.
    pub epoch: u64,
    /// `seq` of the last event.
    pub seq: u64,
}

const NEW: u8 = 0;
const UNANSWERED: u8 = 1;
const ACTIVE: u8 = 2;
const FINISHED: u8 = 3;

/// What was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// An agent's message carrying the epoch it saw (takes unless it owns it).
    AgentSend { agent: u16, seen_epoch: u64 },
    /// The owner finishes, with the epoch it saw.
    Finish { agent: u16, seen_epoch: u64 },
    /// The end user writes.
    UserSend,
    /// An admin (or the stall policy) gives it back to the queue, on the epoch and `seq`
    /// it saw.
    Release { seen_epoch: u64, last_seq: u64 },
}

/// What came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Applied; the state after it (for sends, `seq` is the message's).
    Ok {
        status: u8,
        owner: Option<u16>,
        epoch: u64,
        seq: u64,
    },
    /// `conflict`, naming the owner and epoch at that moment.
    Conflict { owner: Option<u16>, epoch: u64 },
    /// Refused by the rules (`invalid_state`, `forbidden`): nothing changed.
    Refused,
    /// No answer (timeout, `unavailable`): applied or not, at some point after the call.
    Unknown,
}

/// One operation of the history.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// What was asked.
    pub input: Input,
    /// What came back.
    pub output: Output,
    /// When it was sent.
    pub call: Instant,
    /// When the answer came (ignored for `Unknown`).
    pub ret: Instant,
}

/// The sequential state machine: the new state and the answer it gives.
pub fn step(m: Model, input: Input) -> (Model, Output) {
    let ok = |m: Model, seq: u64| Output::Ok {
        status: m.status,
        owner: m.owner,
        epoch: m.epoch,
        seq,
    };
    match input {
        Input::UserSend => {
            let mut n = m;
            if m.status == NEW || m.status == FINISHED {
                n.status = UNANSWERED;
                n.seq += 2; // status change, then the message
            } else {
                n.seq += 1;
            }
            (n, ok(n, n.seq))
        }
        Input::AgentSend { agent, seen_epoch } => {
            if seen_epoch != m.epoch {
                return (
                    m,
                    Output::Conflict {
                        owner: m.owner,
                        epoch: m.epoch,
                    },
                );
            }
            let mut n = m;
            if m.status == ACTIVE && m.owner == Some(agent) {
                n.seq += 1;
            } else {
                n.status = ACTIVE;
                n.owner = Some(agent);
                n.epoch += 1;
                n.seq += 2; // status change, then the message
            }
            (n, ok(n, n.seq))
        }
        Input::Finish { agent, seen_epoch } => {
            // The rules' order: nothing to finish, then not the owner, then the epoch.
            if m.status == NEW || m.status == FINISHED || m.owner != Some(agent) {
                return (m, Output::Refused);
            }
            if seen_epoch != m.epoch {
                return (
                    m,
                    Output::Conflict {
                        owner: m.owner,
                        epoch: m.epoch,
                    },
                );
            }
            let n = Model {
                status: FINISHED,
                owner: None,
                epoch: m.epoch + 1,
                seq: m.seq + 1,
            };
            (n, ok(n, n.seq))
        }
        Input::Release {
            seen_epoch,
            last_seq,
        } => {
            // The rules' order: only active, then the epoch, then nothing since.
            if m.status != ACTIVE {
                return (m, Output::Refused);
            }
            if seen_epoch != m.epoch {
                return (
                    m,
                    Output::Conflict {
                        owner: m.owner,
                        epoch: m.epoch,
                    },
                );
            }
            if last_seq != m.seq {
                return (m, Output::Refused);
            }
            let n = Model {
                status: UNANSWERED,
                owner: None,
                epoch: m.epoch + 1,
                seq: m.seq + 1,
            };
            (n, ok(n, n.seq))
        }
    }
}

/// Whether `history` (at most 128 operations) is linearizable from `initial`.
pub fn is_linearizable(initial: Model, history: &[Operation]) -> bool {
    assert!(history.len() <= 128, "the search keeps a 128-bit set");
    let mut seen = HashSet::new();
    search(initial, history, 0, &mut seen)
}

fn search(
    state: Model,
    history: &[Operation],
    done: u128,
    seen: &mut HashSet<(u128, Model)>,
) -> bool {
    // Done when every operation with a known outcome is placed; unknown ones may never
    // have happened.
    let pending = |i: usize| done & (1 << i) == 0;
    if (0..history.len()).all(|i| !pending(i) || history[i].output == Output::Unknown) {
        return true;
    }
    if !seen.insert((done, state)) {
        return false;
    }
    // Only operations called before every pending known one returned may go next.
    let deadline = (0..history.len())
        .filter(|&i| pending(i) && history[i].output != Output::Unknown)
        .map(|i| history[i].ret)
        .min();
    for (i, op) in history.iter().enumerate() {
        if !pending(i) || deadline.is_some_and(|d| op.call > d) {
            continue;
        }
        let (next, answer) = step(state, op.input);
        if (op.output == Output::Unknown || answer == op.output)
            && search(next, history, done | (1 << i), seen)
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn op(input: Input, output: Output, call_ms: u64, ret_ms: u64, t0: Instant) -> Operation {
        Operation {
            input,
            output,
            call: t0 + Duration::from_millis(call_ms),
            ret: t0 + Duration::from_millis(ret_ms),
        }
    }

    fn taken(agent: u16, epoch: u64, seq: u64) -> Output {
        Output::Ok {
            status: ACTIVE,
            owner: Some(agent),
            epoch,
            seq,
        }
    }

    #[test]
    fn accepts_a_race_with_one_winner_and_rejects_two() {
        let t0 = Instant::now();
        let user = op(
            Input::UserSend,
            Output::Ok {
                status: UNANSWERED,
                owner: None,
                epoch: 0,
                seq: 2,
            },
            0,
            1,
            t0,
        );
        let a = Input::AgentSend {
            agent: 1,
            seen_epoch: 0,
        };
        let b = Input::AgentSend {
            agent: 2,
            seen_epoch: 0,
        };
        // Concurrent: b's conflict names a, a won.
        let good = [
            user,
            op(a, taken(1, 1, 4), 5, 10, t0),
            op(
                b,
                Output::Conflict {
                    owner: Some(1),
                    epoch: 1,
                },
                6,
                9,
                t0,
            ),
        ];
        assert!(is_linearizable(Model::default(), &good));
        // Both "won" with the same epoch: impossible.
        let bad = [
            user,
            op(a, taken(1, 1, 4), 5, 10, t0),
            op(b, taken(2, 1, 4), 6, 9, t0),
        ];
        assert!(!is_linearizable(Model::default(), &bad));
        // b's conflict cannot name a if b returned before a was called.
        let stale = [
            user,
            op(
                b,
                Output::Conflict {
                    owner: Some(1),
                    epoch: 1,
                },
                2,
                3,
                t0,
            ),
            op(a, taken(1, 1, 4), 5, 10, t0),
        ];
        assert!(!is_linearizable(Model::default(), &stale));
    }

    #[test]
    fn unknown_outcomes_may_apply_late_or_never() {
        let t0 = Instant::now();
        let user = op(
            Input::UserSend,
            Output::Ok {
                status: UNANSWERED,
                owner: None,
                epoch: 0,
                seq: 2,
            },
            0,
            1,
            t0,
        );
        let a = Input::AgentSend {
            agent: 1,
            seen_epoch: 0,
        };
        let b = Input::AgentSend {
            agent: 2,
            seen_epoch: 0,
        };
        // a timed out, but its take happened: b, later, conflicts with a.
        let applied = [
            user,
            op(a, Output::Unknown, 2, 3, t0),
            op(
                b,
                Output::Conflict {
                    owner: Some(1),
                    epoch: 1,
                },
                20,
                21,
                t0,
            ),
        ];
        assert!(is_linearizable(Model::default(), &applied));
        // a timed out and never happened: b wins.
        let never = [
            user,
            op(a, Output::Unknown, 2, 3, t0),
            op(b, taken(2, 1, 4), 20, 21, t0),
        ];
        assert!(is_linearizable(Model::default(), &never));
    }
}
