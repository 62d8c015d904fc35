//! Reports: one row per conversation cycle (from its opening to its finish, and the
//! survey answer after it), derived from the recorded events in `(conversation, seq)`
//! order, for every backend alike, and the day's totals built from the same rows.

use chathub_domain::{Cause, ConversationId, Event, EventBody, Role};

/// One cycle of a conversation: opened (or reopened) by the end user's message, up to
/// its finish (or now, if it is still open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleRow {
    /// The conversation.
    pub conversation: ConversationId,
    /// `seq` of the event that opened the cycle.
    pub opened_seq: u64,
    /// When it was opened, ms.
    pub opened_at: u64,
    /// When an agent first wrote in it, ms.
    pub first_reply_at: Option<u64>,
    /// Its owners in order (take, take-overs).
    pub owners: Vec<String>,
    /// When it was finished, ms (`None`: still open).
    pub finished_at: Option<u64>,
    /// Who finished it.
    pub finished_by: Option<String>,
    /// Messages of the end user in the cycle.
    pub end_user_messages: u64,
    /// Messages of agents in the cycle.
    pub agent_messages: u64,
    /// When it was first taken, ms.
    pub taken_at: Option<u64>,
    /// The end user's answer to the survey of its finish: 1–5.
    pub rating: Option<u8>,
    /// The answer's comment.
    pub comment: Option<String>,
    /// The catalogue item the answer granted as a reward.
    pub reward: Option<String>,
}

impl CycleRow {
    /// How long the end user waited: from the opening to the first take (or, unanswered,
    /// to its finish). `None` while still waiting.
    pub fn waiting_ms(&self) -> Option<u64> {
        self.taken_at
            .or(self.finished_at)
            .map(|t| t.saturating_sub(self.opened_at))
    }

    /// How long agents handled it: from the first take to the finish.
    pub fn handling_ms(&self) -> Option<u64> {
        Some(self.finished_at?.saturating_sub(self.taken_at?))
    }

    /// The CSV header of [`CycleRow::csv`].
    pub const CSV_HEADER: &'static str = "conversation,opened_seq,opened_at,first_reply_at,owners,\
finished_at,finished_by,end_user_messages,agent_messages,waiting_ms,handling_ms,rating,comment,\
reward\n";

    /// The row as a CSV line (times in ms since the Unix epoch; owners joined by `|`;
    /// empty where there is nothing). Ids hold no comma, quote or newline (their alphabet
    /// is `A-Z a-z 0-9 - _ . : @`), so only the comment, free text, is quoted.
    pub fn csv(&self) -> String {
        let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            self.conversation,
            self.opened_seq,
            self.opened_at,
            opt(self.first_reply_at),
            self.owners.join("|"),
            opt(self.finished_at),
            self.finished_by.as_deref().unwrap_or(""),
            self.end_user_messages,
            self.agent_messages,
            opt(self.waiting_ms()),
            opt(self.handling_ms()),
            opt(self.rating.map(u64::from)),
            self.comment.as_deref().map_or(String::new(), csv_text),
            self.reward.as_deref().unwrap_or(""),
        )
    }
}

/// Free text as one CSV field (RFC 4180): quoted, quotes doubled; a text a spreadsheet
/// would take for a formula (`=`, `+`, `-`, `@`, tab, CR) is prefixed with `'` so that
/// opening the report never runs what an end user typed.
fn csv_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 3);
    out.push('"');
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        out.push('\'');
    }
    for c in text.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Builds cycle rows from events fed in `(conversation, seq)` order; only cycles opened
/// in `[from, to)` are reported (events of cycles opened earlier are skipped).
#[derive(Debug)]
pub struct Cycles {
    from: u64,
    to: u64,
    current: Option<CycleRow>,
    /// The conversation of the stored rows being fed ([`Cycles::push_stored`]).
    stored: Option<ConversationId>,
}

impl Cycles {
    /// Reports cycles opened in `[from, to)` (ms).
    pub fn new(from: u64, to: u64) -> Self {
        Cycles {
            from,
            to,
            current: None,
            stored: None,
        }
    }

    /// [`push`](Cycles::push) for rows read from a record tier, whose conversation is a
    /// stored string (parsed once per conversation, not per event).
    pub fn push_stored(
        &mut self,
        conversation: &str,
        event: &Event,
    ) -> Result<Option<CycleRow>, crate::StoreError> {
        let known = match self.stored.take() {
            Some(c) if c.as_str() == conversation => c,
            _ => ConversationId::new(conversation)
                .map_err(|e| crate::StoreError::corrupt("conversation id", e))?,
        };
        let done = self.push(&known, event);
        self.stored = Some(known);
        Ok(done)
    }

    /// Feeds the next event; returns a row when a cycle is complete: the next cycle or
    /// the next conversation began (a finished one waits for its survey's answer).
    pub fn push(&mut self, conversation: &ConversationId, event: &Event) -> Option<CycleRow> {
        let mut done = None;
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.conversation != *conversation)
        {
            done = self.current.take();
        }
        match &event.body {
            EventBody::Status {
                cause, by, owner, ..
            } => match cause {
                Cause::Opened | Cause::Reopened => {
                    if let Some(open) = self.current.take() {
                        done = Some(open);
                    }
                    if (self.from..self.to).contains(&event.at) {
                        self.current = Some(CycleRow {
                            conversation: conversation.clone(),
                            opened_seq: event.seq,
                            opened_at: event.at,
                            first_reply_at: None,
                            owners: Vec::new(),
                            finished_at: None,
                            finished_by: None,
                            end_user_messages: 0,
                            agent_messages: 0,
                            taken_at: None,
                            rating: None,
                            comment: None,
                            reward: None,
                        });
                    }
                }
                // An assignment (a transfer out of the queue) ends the wait like a take.
                Cause::Taken | Cause::TakenOver | Cause::Transferred => {
                    if let (Some(c), Some(owner)) = (self.open(), owner) {
                        c.taken_at.get_or_insert(event.at);
                        c.owners.push(owner.to_string());
                    }
                }
                Cause::Finished => {
                    // Kept until the next cycle (or conversation) begins: the survey's
                    // answer comes after the finish.
                    if let Some(c) = self.open() {
                        c.finished_at = Some(event.at);
                        c.finished_by = Some(by.id.clone());
                    }
                }
                // Back in the queue: the cycle goes on (the next take adds its owner).
                // A bot's handoff puts it in the queue too.
                Cause::Disabled | Cause::Enabled | Cause::Released | Cause::HandedOff => {}
            },
            EventBody::Message { author, .. } => {
                if let Some(c) = self.open() {
                    if author.role == Role::EndUser {
                        c.end_user_messages += 1;
                    } else if author.role == Role::Bot {
                        // The bot's answers are not the team's: the first reply and
                        // the agents' count are the humans'.
                    } else {
                        c.agent_messages += 1;
                        c.first_reply_at.get_or_insert(event.at);
                    }
                }
            }
            // A scanner's verdict is nobody's message; a note is not an answer.
            EventBody::AttachmentChecked { .. }
            | EventBody::Note { .. }
            | EventBody::Handoff { .. }
            | EventBody::Edited { .. }
            | EventBody::Unsent { .. }
            | EventBody::Redacted { .. }
            | EventBody::Survey { .. }
            // The automatic reply outside hours is not an agent's answer.
            | EventBody::AutoReply { .. } => {}
            EventBody::SurveyAnswered {
                rating,
                comment,
                reward,
                ..
            } => {
                // The survey is the finished cycle's (any status change since closed it).
                if let Some(c) = self.current.as_mut().filter(|c| c.finished_at.is_some()) {
                    c.rating = Some(*rating);
                    c.comment.clone_from(comment);
                    c.reward = reward.as_ref().map(|r| r.id.clone());
                }
            }
        }
        done
    }

    /// The current cycle while it is not finished yet.
    fn open(&mut self) -> Option<&mut CycleRow> {
        self.current.as_mut().filter(|c| c.finished_at.is_none())
    }

    /// The last cycle at the end of the events (still open, or finished and waiting for
    /// its survey's answer), if any.
    pub fn finish(self) -> Option<CycleRow> {
        self.current
    }
}

/// Streams a tenant's conversation cycles from the record tier.
pub trait Reports: Send + Sync + 'static {
    /// Sends every cycle opened in `[from, to)` (ms) into `rows`, in `(conversation, seq)`
    /// order, as it is read; stops early when the receiver is gone.
    fn report_cycles(
        &self,
        tenant: &chathub_domain::TenantId,
        from: u64,
        to: u64,
        rows: tokio::sync::mpsc::Sender<CycleRow>,
    ) -> impl std::future::Future<Output = Result<(), crate::StoreError>> + Send;
}

/// Totals over cycles: what the console shows for the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Cycles opened.
    pub opened: u64,
    /// Of them, answered by an agent.
    pub answered: u64,
    /// Of them, finished.
    pub finished: u64,
    /// Messages of end users.
    pub end_user_messages: u64,
    /// Messages of agents.
    pub agent_messages: u64,
    /// Mean waiting time of the cycles taken or finished, ms.
    pub mean_waiting_ms: Option<u64>,
    /// Mean handling time of the cycles taken and finished, ms.
    pub mean_handling_ms: Option<u64>,
    /// Survey answers by rating: `ratings[0]` rated 1, … `ratings[4]` rated 5.
    pub ratings: [u64; 5],
}

/// Adds up cycle rows.
#[derive(Debug, Default)]
pub struct TotalsBuilder {
    totals: Totals,
    waiting: (u64, u64),
    handling: (u64, u64),
}

impl TotalsBuilder {
    /// Counts one cycle.
    pub fn add(&mut self, row: &CycleRow) {
        let t = &mut self.totals;
        t.opened += 1;
        t.answered += u64::from(row.first_reply_at.is_some());
        t.finished += u64::from(row.finished_at.is_some());
        t.end_user_messages += row.end_user_messages;
        t.agent_messages += row.agent_messages;
        if let Some(r @ 1..=5) = row.rating {
            t.ratings[usize::from(r - 1)] += 1;
        }
        if let Some(w) = row.waiting_ms() {
            self.waiting = (self.waiting.0 + w, self.waiting.1 + 1);
        }
        if let Some(h) = row.handling_ms() {
            self.handling = (self.handling.0 + h, self.handling.1 + 1);
        }
    }

    /// The totals.
    pub fn build(self) -> Totals {
        let mean = |(sum, n): (u64, u64)| (n > 0).then(|| sum / n);
        Totals {
            mean_waiting_ms: mean(self.waiting),
            mean_handling_ms: mean(self.handling),
            ..self.totals
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathub_domain::{AgentId, Author, MessageContent, Status};

    fn status(seq: u64, at: u64, cause: Cause, owner: Option<&str>, by: (Role, &str)) -> Event {
        Event {
            seq,
            at,
            body: EventBody::Status {
                status: Status::Active,
                owner: owner.map(|o| AgentId::new(o).unwrap_or_else(|_| unreachable!())),
                epoch: 0,
                disabled: false,
                cause,
                previous_owner: None,
                reason: None,
                by: Author {
                    role: by.0,
                    id: by.1.into(),
                },
            },
            amended: None,
        }
    }

    fn message(seq: u64, at: u64, role: Role, id: &str) -> Event {
        Event {
            seq,
            at,
            body: EventBody::Message {
                author: Author {
                    role,
                    id: id.into(),
                },
                client_msg_id: None,
                content: MessageContent::Text { text: "x".into() },
            },
            amended: None,
        }
    }

    #[test]
    fn cycles_from_opening_to_finish() {
        let ann = ConversationId::new("ann").unwrap_or_else(|_| unreachable!());
        let bob = ConversationId::new("bob").unwrap_or_else(|_| unreachable!());
        let user = (Role::EndUser, "ann");
        let events = [
            (&ann, status(1, 100, Cause::Opened, None, user)),
            (&ann, message(2, 100, Role::EndUser, "ann")),
            (
                &ann,
                status(3, 160, Cause::Taken, Some("alice"), (Role::Agent, "alice")),
            ),
            (&ann, message(4, 160, Role::Agent, "alice")),
            (
                &ann,
                status(5, 200, Cause::TakenOver, Some("bob"), (Role::Agent, "bob")),
            ),
            (&ann, message(6, 200, Role::Agent, "bob")),
            (
                &ann,
                status(7, 400, Cause::Finished, None, (Role::Agent, "bob")),
            ),
            (
                &ann,
                Event {
                    seq: 8,
                    at: 420,
                    body: EventBody::SurveyAnswered {
                        survey: 7,
                        author: Author {
                            role: Role::EndUser,
                            id: "ann".into(),
                        },
                        rating: 4,
                        comment: Some("=quick, \"kind\"".into()),
                        reward: None,
                    },
                    amended: None,
                },
            ),
            (&ann, status(8, 500, Cause::Reopened, None, user)),
            (&ann, message(9, 500, Role::EndUser, "ann")),
            // bob's conversation opened before the range: skipped.
            (
                &bob,
                status(1, 10, Cause::Opened, None, (Role::EndUser, "bob")),
            ),
            (&bob, message(2, 150, Role::EndUser, "bob")),
        ];
        let mut cycles = Cycles::new(50, 1000);
        let mut rows: Vec<CycleRow> = events
            .iter()
            .filter_map(|(c, e)| cycles.push(c, e))
            .collect();
        rows.extend(cycles.finish());
        assert_eq!(rows.len(), 2, "{rows:?}");
        let first = &rows[0];
        assert_eq!(first.owners, ["alice", "bob"]);
        assert_eq!(
            (first.waiting_ms(), first.handling_ms()),
            (Some(60), Some(240))
        );
        assert_eq!((first.end_user_messages, first.agent_messages), (1, 2));
        assert_eq!(first.rating, Some(4));
        assert_eq!(
            first.csv(),
            "ann,1,100,160,alice|bob,400,bob,1,2,60,240,4,\"'=quick, \"\"kind\"\"\",\n"
        );
        let second = &rows[1];
        assert_eq!((second.opened_seq, second.finished_at), (8, None));
        assert_eq!(second.csv(), "ann,8,500,,,,,1,0,,,,,\n");
        assert_eq!(
            CycleRow::CSV_HEADER.matches(',').count(),
            second.csv().matches(',').count()
        );
        let mut totals = TotalsBuilder::default();
        rows.iter().for_each(|r| totals.add(r));
        let totals = totals.build();
        assert_eq!((totals.opened, totals.answered, totals.finished), (2, 1, 1));
        assert_eq!(
            (totals.mean_waiting_ms, totals.mean_handling_ms),
            (Some(60), Some(240))
        );
        assert_eq!(totals.ratings, [0, 0, 0, 1, 0]);
    }
}
