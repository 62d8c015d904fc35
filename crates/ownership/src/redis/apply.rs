//! Group commit of commands: `lua/apply.lua` applies one or more commands per call, each
//! decided in order and atomically. A node's commands go to one writer task per backend
//! ([`write_commands`]), which takes whatever is pending, sends it in calls of at most
//! [`APPLY_BATCH`] per Redis slot (a single Redis is one slot), and answers each caller
//! with its own outcome. While a call is in flight the next batch gathers, so batches
//! grow with load (one script run, one round trip and one reply for many commands) and
//! stay single commands when the node is idle. The writer also answers a take race's
//! stale losers itself (see [`write_commands`]).
//!
//! A command is encoded once, by the caller's task ([`PreparedApply`]): its keys and
//! arguments as Redis takes them, and a message's event packed here (MessagePack, without
//! its `seq` and `at`, which the script appends) rather than re-packed in Lua.

use super::RedisOwnership;
use crate::{ApplyRequest, OwnershipError};
use chathub_broker::ChannelName;
use chathub_domain::{
    Actor, Change, Command, ConversationId, ConversationState, Event, MessageContent, Outcome,
    Participant, Status, TenantId,
};
use redis::aio::ConnectionLike;
use redis::{Arg, Cmd, Value};
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Most commands in one script call (keeps each run short: Redis runs nothing else
/// meanwhile; 64 plain messages take ~1 ms of script time).
pub(super) const APPLY_BATCH: usize = 64;

/// Commands waiting for the node's apply writer; callers wait when it is full.
pub(super) const APPLY_QUEUE: usize = 8192;

/// Arguments the script takes before the first command (`lua/apply.lua`: HEADER).
const HEADER_ARGS: usize = 8;

/// Arguments per command (`lua/apply.lua`: BLOCK).
const BLOCK_ARGS: usize = 24;

/// One command encoded for `lua/apply.lua`: its keys and its block of arguments.
pub(super) struct PreparedApply {
    /// The command's keys, in the script's order (a `Cmd` used as an argument buffer:
    /// one allocation for all of them).
    keys: Cmd,
    /// Its [`BLOCK_ARGS`] arguments.
    args: Cmd,
    /// The cluster slot its keys hash to (0 on a single Redis): one call per slot.
    pub(super) group: u16,
    /// Whether applying it twice is harmless (a send with a `client_msg_id`, deduplicated
    /// by the script, or setting the disabled flag): then it is retried once on a new
    /// connection after a dropped one.
    pub(super) retry_safe: bool,
}

/// What the script answered for one command.
#[derive(Debug)]
pub(super) enum RawOutcome {
    /// Applied, or answered from the dedup key (`earlier_ack`).
    Done {
        state: ConversationState,
        queued_since: Option<u64>,
        earlier_ack: Option<Vec<u8>>,
        events: Vec<Event>,
    },
    /// The epoch moved; the state the command met.
    Conflict {
        owner: String,
        epoch: u64,
        state: ConversationState,
    },
    /// Refused by the rules, with the reason's code.
    Refused(String),
    /// An erasure done in the conversation's slot (and, on a single Redis, in the
    /// tenant's queue).
    Erased {
        state: ConversationState,
        removed: crate::Erased,
    },
}

/// A command waiting for the node's apply writer.
pub(super) struct ApplyJob {
    /// Its encoding.
    pub(super) prepared: PreparedApply,
    /// The command itself: handed back with the outcome (the writer may decide a stale
    /// loser from it alone, with the domain's rules).
    pub(super) request: ApplyRequest,
    /// When it was handed to the writer.
    pub(super) submitted: Instant,
    /// Who waits for the outcome.
    pub(super) done: oneshot::Sender<Result<(ApplyRequest, RawOutcome), OwnershipError>>,
}

/// Writes one more argument through `write!` (no intermediate `String`).
fn arg_fmt(cmd: &mut Cmd, args: std::fmt::Arguments<'_>) {
    use redis::RedisWrite as _;
    // Writing into the command's own buffer cannot fail.
    let _ = cmd.writer_for_next_arg().write_fmt(args);
}

/// Packs a message's event as the script stores it, without `seq` and `at`: the map's
/// count includes those two, which the script appends. Field names as
/// `chathub_domain::EventBody::Message` serializes them (the differential test reads the
/// stored events back as `Event`s).
fn pack_message(
    out: &mut Vec<u8>,
    actor: &Actor,
    content: &MessageContent,
    client_msg_id: Option<&str>,
) -> Result<(), OwnershipError> {
    pack_authored(out, "message", actor, client_msg_id, 0)?;
    rmp::encode::write_str(out, "content").map_err(|e| encode_failed(&e))?;
    rmp_serde::encode::write_named(out, content).map_err(|e| encode_failed(&e))
}

/// Packs a note's event (`chathub_domain::EventBody::Note`) as [`pack_message`] does a
/// message's.
fn pack_note(
    out: &mut Vec<u8>,
    actor: &Actor,
    text: &str,
    mentions: &[chathub_domain::AgentId],
    client_msg_id: Option<&str>,
) -> Result<(), OwnershipError> {
    pack_authored(
        out,
        "note",
        actor,
        client_msg_id,
        u32::from(!mentions.is_empty()),
    )?;
    rmp::encode::write_str(out, "text").map_err(|e| encode_failed(&e))?;
    rmp::encode::write_str(out, text).map_err(|e| encode_failed(&e))?;
    if !mentions.is_empty() {
        rmp::encode::write_str(out, "mentions").map_err(|e| encode_failed(&e))?;
        rmp::encode::write_array_len(out, mentions.len() as u32).map_err(|e| encode_failed(&e))?;
        for agent in mentions {
            rmp::encode::write_str(out, agent.as_str()).map_err(|e| encode_failed(&e))?;
        }
    }
    Ok(())
}

/// `body` packed as the script appends `seq` and `at` to it: a map counting them.
fn pack_open(body: &chathub_domain::EventBody) -> Result<Vec<u8>, OwnershipError> {
    let mut packed = rmp_serde::to_vec_named(body).map_err(|e| encode_failed(&e))?;
    match packed.first_mut() {
        // A fixmap of at most 13 fields: two more still fit.
        Some(header) if (0x80..=0x8d).contains(header) => *header += 2,
        _ => return Err(encode_failed(&"an amendment is not a small map")),
    }
    Ok(packed)
}

/// The start of an authored event's map (`event`, `author`, `client_msg_id`); its
/// content follows (one field, and `extra` more).
fn pack_authored(
    out: &mut Vec<u8>,
    kind: &str,
    actor: &Actor,
    client_msg_id: Option<&str>,
    extra: u32,
) -> Result<(), OwnershipError> {
    let encode = |e: &dyn std::fmt::Display| encode_failed(e);
    let fields = 3 + u32::from(client_msg_id.is_some()) + extra + 2;
    rmp::encode::write_map_len(out, fields).map_err(|e| encode(&e))?;
    rmp::encode::write_str(out, "event").map_err(|e| encode(&e))?;
    rmp::encode::write_str(out, kind).map_err(|e| encode(&e))?;
    // chathub_domain::Author, written from the actor without copying its id.
    let id = match actor {
        Actor::EndUser(id) => id.as_str(),
        Actor::Agent { id, .. } => id.as_str(),
    };
    rmp::encode::write_str(out, "author").map_err(|e| encode(&e))?;
    rmp::encode::write_map_len(out, 2).map_err(|e| encode(&e))?;
    rmp::encode::write_str(out, "role").map_err(|e| encode(&e))?;
    rmp::encode::write_str(out, actor.role().as_str()).map_err(|e| encode(&e))?;
    rmp::encode::write_str(out, "id").map_err(|e| encode(&e))?;
    rmp::encode::write_str(out, id).map_err(|e| encode(&e))?;
    if let Some(id) = client_msg_id {
        rmp::encode::write_str(out, "client_msg_id").map_err(|e| encode(&e))?;
        rmp::encode::write_str(out, id).map_err(|e| encode(&e))?;
    }
    Ok(())
}

/// Packs a string field's name and value.
fn pack_pair(out: &mut Vec<u8>, name: &str, value: &str) -> Result<(), OwnershipError> {
    rmp::encode::write_str(out, name).map_err(|e| encode_failed(&e))?;
    rmp::encode::write_str(out, value).map_err(|e| encode_failed(&e))
}

fn encode_failed(e: &dyn std::fmt::Display) -> OwnershipError {
    OwnershipError::Internal(format!("encode: {e}"))
}

/// Packs a `survey_answered` event (`chathub_domain::EventBody::SurveyAnswered`) for
/// `lua/apply.lua` as [`pack_message`] does a message, without its `survey`: the map's
/// count includes it, which the script appends (the seq of the survey it finds open).
fn pack_answer(
    out: &mut Vec<u8>,
    actor: &Actor,
    rating: u8,
    comment: Option<&str>,
    reward: Option<&chathub_domain::EngagementCard>,
) -> Result<(), OwnershipError> {
    let encode = |e: &dyn std::fmt::Display| encode_failed(e);
    // `rating` is the content field `pack_authored` counts; `survey` (appended by the
    // script) and the optional two are the extra ones.
    let extra = 1 + u32::from(comment.is_some()) + u32::from(reward.is_some());
    pack_authored(out, "survey_answered", actor, None, extra)?;
    rmp::encode::write_str(out, "rating").map_err(|e| encode(&e))?;
    rmp::encode::write_uint(out, u64::from(rating)).map_err(|e| encode(&e))?;
    if let Some(comment) = comment {
        rmp::encode::write_str(out, "comment").map_err(|e| encode(&e))?;
        rmp::encode::write_str(out, comment).map_err(|e| encode(&e))?;
    }
    if let Some(reward) = reward {
        rmp::encode::write_str(out, "reward").map_err(|e| encode(&e))?;
        rmp_serde::encode::write_named(out, reward).map_err(|e| encode(&e))?;
    }
    Ok(())
}

/// Packs an `attachment_checked` event for `lua/apply.lua`, as [`pack_message`] does a
/// message: a fixmap whose count includes the `seq` and `at` the script appends.
fn pack_verdict(
    out: &mut Vec<u8>,
    attachment: &chathub_domain::AttachmentId,
    status: chathub_domain::AttachmentStatus,
) -> Result<(), OwnershipError> {
    let encode = |e: &dyn std::fmt::Display| OwnershipError::Internal(format!("encode: {e}"));
    rmp::encode::write_map_len(out, 3 + 2).map_err(|e| encode(&e))?;
    for (key, value) in [
        ("event", "attachment_checked"),
        ("attachment", attachment.as_str()),
        ("status", status.as_str()),
    ] {
        rmp::encode::write_str(out, key).map_err(|e| encode(&e))?;
        rmp::encode::write_str(out, value).map_err(|e| encode(&e))?;
    }
    Ok(())
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisOwnership<C> {
    /// Encodes `req` for `lua/apply.lua`.
    pub(super) fn prepare(&self, req: &ApplyRequest) -> Result<PreparedApply, OwnershipError> {
        let (role, actor_id, privileges) = match &req.actor {
            Actor::EndUser(id) => ("end_user", id.as_str(), 0),
            Actor::Agent { id, privileges, .. } => {
                (req.actor.role().as_str(), id.as_str(), privileges.bits())
            }
        };
        let (command, content, client_msg_id, seen_epoch, want_disabled) = match &req.command {
            Command::Send {
                content,
                client_msg_id,
                seen_epoch,
            } => (
                "send",
                Some(content),
                client_msg_id.as_deref(),
                *seen_epoch,
                false,
            ),
            Command::Note { client_msg_id, .. } => {
                ("note", None, client_msg_id.as_deref(), None, false)
            }
            Command::Finish { seen_epoch } => ("finish", None, None, Some(*seen_epoch), false),
            Command::Transfer { seen_epoch, .. } => {
                ("transfer", None, None, Some(*seen_epoch), false)
            }
            Command::SetDisabled(d) => ("set_disabled", None, None, None, *d),
            Command::RecordVerdict { .. } => ("verdict", None, None, None, false),
            Command::Erase => ("erase", None, None, None, false),
            // The target's seq travels where an epoch would.
            Command::Amend { target, change } => (
                match change {
                    Change::Edit { .. } => "edit",
                    Change::Unsend => "unsend",
                    Change::Redact { .. } => "redact",
                },
                None,
                None,
                Some(*target),
                false,
            ),
            // The seq it must still be at travels where an epoch would.
            Command::Expire { last_seq } => ("expire", None, None, Some(*last_seq), false),
            Command::AnswerSurvey { .. } => ("survey_answer", None, None, None, false),
            Command::Release { seen_epoch, .. } => {
                ("release", None, None, Some(*seen_epoch), false)
            }
            // The seq it must still be at travels where an epoch would.
            Command::AutoReply { last_seq, .. } => {
                ("auto_reply", None, None, Some(*last_seq), false)
            }
            Command::Handoff { seen_epoch, .. } => {
                ("handoff", None, None, Some(*seen_epoch), false)
            }
        };
        let erase = matches!(req.command, Command::Erase | Command::Expire { .. });
        let inline = !self.config.cluster;
        let (t, c) = (&req.tenant, &req.conversation);
        // An erasure leaves one mark, for the queue on a Redis Cluster and the archive.
        let marks = match erase {
            true if self.config.cluster || self.config.archive.is_some() => "e",
            true => "",
            false => self.pending_marks(),
        };
        let prefix = self.keys.prefix();
        let state_key = self.keys.state_name(t, c);
        let mut keys = Cmd::with_capacity(13, 512);
        keys.arg(state_key).arg(self.keys.history_name(t, c));
        match client_msg_id {
            Some(id) => keys.arg(self.keys.dedup(t, c, &Participant::of(&req.actor), id)),
            // An erasure removes the read marks there.
            None if erase => keys.arg(self.keys.reads(t, c)),
            // Read only with a client_msg_id: any key of the slot will do.
            None => keys.arg(state_key),
        };
        // Without follow-ups to mark, any key of the slot will do (it is not touched); an
        // erasure removes the earlier follow-ups' marks.
        if marks.is_empty() && !erase {
            keys.arg(state_key);
        } else {
            keys.arg(self.pending_key(t, c));
        }
        let mut args = Cmd::with_capacity(BLOCK_ARGS, 512);
        args.arg(role).arg(actor_id).arg(privileges).arg(command);
        match (content, &req.command) {
            (Some(content), _) => {
                let mut body = Vec::with_capacity(128);
                pack_message(&mut body, &req.actor, content, client_msg_id)?;
                args.arg(body);
            }
            (None, Command::RecordVerdict { attachment, status }) => {
                let mut body = Vec::with_capacity(96);
                pack_verdict(&mut body, attachment, *status)?;
                args.arg(body);
            }
            (None, Command::Transfer { to, .. }) => {
                args.arg(to.as_str());
            }
            (None, Command::Release { reason, .. }) => {
                args.arg(reason.as_str());
            }
            (None, Command::AutoReply { text, back_at, .. }) => {
                let body = chathub_domain::EventBody::AutoReply {
                    text: text.clone(),
                    back_at: *back_at,
                };
                args.arg(pack_open(&body)?);
            }
            (
                None,
                Command::Handoff {
                    summary, fields, ..
                },
            ) => {
                let body = chathub_domain::EventBody::Handoff {
                    author: chathub_domain::Author::of(&req.actor),
                    summary: summary.clone(),
                    fields: fields.clone(),
                };
                args.arg(pack_open(&body)?);
            }
            (None, Command::Note { text, mentions, .. }) => {
                let mut body = Vec::with_capacity(96 + text.len());
                pack_note(&mut body, &req.actor, text, mentions, client_msg_id)?;
                args.arg(body);
            }
            (None, Command::Amend { target, change }) => {
                let body = chathub_domain::conversation::amend::body(&req.actor, *target, change);
                args.arg(pack_open(&body)?);
            }
            // With the tenant's survey, the event the finish records after its status.
            (None, Command::Finish { .. }) => match &req.context.survey {
                Some(prompt) => {
                    let survey = chathub_domain::EventBody::Survey {
                        prompt: prompt.clone(),
                    };
                    args.arg(pack_open(&survey)?);
                }
                None => {
                    args.arg("");
                }
            },
            (
                None,
                Command::AnswerSurvey {
                    rating,
                    comment,
                    reward,
                },
            ) => {
                let mut body = Vec::with_capacity(160);
                pack_answer(
                    &mut body,
                    &req.actor,
                    *rating,
                    comment.as_deref(),
                    reward.as_ref(),
                )?;
                args.arg(body);
            }
            (None, _) => {
                args.arg("");
            }
        }
        args.arg(client_msg_id.unwrap_or(""));
        match seen_epoch {
            Some(e) => args.arg(e),
            None => args.arg(""),
        };
        match &req.command {
            // The seq a release must still find travels where the disabled flag would.
            Command::Release { last_seq, .. } => args.arg(*last_seq),
            // So does the tenant's bot, for an end user's message.
            Command::Send { .. } if matches!(req.actor, Actor::EndUser(_)) => {
                args.arg(req.context.bot.as_ref().map_or("", |b| b.as_str()))
            }
            _ => args.arg(if want_disabled { "1" } else { "0" }),
        };
        args.arg(req.at).arg(c.as_str());
        arg_fmt(
            &mut args,
            format_args!("{prefix}:{}", ChannelName::Conversation(t, c)),
        );
        args.arg(match content {
            Some(MessageContent::Engagement { .. }) => "engagement",
            Some(MessageContent::Text { .. }) => "text",
            Some(MessageContent::Attachment { .. }) => "attachment",
            Some(MessageContent::Removed {}) | None => "",
        })
        .arg(if req.context.tenant_chat_disabled {
            "1"
        } else {
            "0"
        });
        let mut preview = std::borrow::Cow::Borrowed("");
        if inline {
            keys.arg(self.keys.inbox_name(t))
                .arg(self.keys.queue_name(t, Status::Unanswered))
                .arg(self.keys.queue_name(t, Status::Active))
                .arg(self.keys.queue_name(t, Status::Finished))
                .arg(self.keys.inbox_events_name(t))
                .arg(self.keys.webhook_jobs_name(t));
            let granted = match (&req.command, content) {
                (Command::AnswerSurvey { reward, .. }, _) => reward.as_ref(),
                (_, Some(MessageContent::Engagement { engagement })) if role != "end_user" => {
                    Some(engagement)
                }
                _ => None,
            };
            if let Some(engagement) = granted {
                // The end user's "received" record is written in the same step.
                let kind = engagement.engagement_type;
                let user = c.end_user();
                keys.arg(self.keys.engagement_history(t, &user))
                    .arg(self.keys.engagement_index(t, &user, None))
                    .arg(self.keys.engagement_index(t, &user, Some(kind)));
            }
            preview = match (&req.command, content) {
                (Command::Amend { target, change }, _) => {
                    let body =
                        chathub_domain::conversation::amend::body(&req.actor, *target, change);
                    // An amendment's preview outlives its body (rare: not the hot path).
                    crate::frames::event_preview(&body)
                        .unwrap_or("")
                        .to_owned()
                        .into()
                }
                (Command::AnswerSurvey { rating, .. }, _) => {
                    let rated =
                        crate::frames::RATED_PREVIEW.get(usize::from(*rating).wrapping_sub(1));
                    rated.copied().unwrap_or("").into()
                }
                (_, Some(c)) => crate::frames::preview_of(c).into(),
                (_, None) => "".into(),
            };
            args.arg(preview.as_ref());
            arg_fmt(
                &mut args,
                format_args!("{prefix}:{}", ChannelName::Agents(t)),
            );
            arg_fmt(
                &mut args,
                format_args!("{prefix}:{}", ChannelName::AgentPrefix(t)),
            );
        } else {
            args.arg("").arg("").arg("");
        }
        args.arg(marks);
        if marks.is_empty() && !erase {
            args.arg("");
        } else {
            arg_fmt(&mut args, format_args!("{t}/{c}"));
        }
        // An amendment: the caller's copy of its target (for a message older than the
        // stream holds) and the edit window.
        match (&req.command, &req.context.target) {
            (Command::Amend { .. }, Some(target)) => {
                args.arg(rmp_serde::to_vec_named(target).map_err(|e| encode_failed(&e))?)
            }
            _ => args.arg(""),
        };
        args.arg(req.context.edit_window_ms);
        // Packed here rather than by the script (see `lua/apply.lua`, a+20..a+22).
        let mut packed = Vec::with_capacity(64 + preview.len());
        pack_pair(&mut packed, "conversation", c.as_str())?;
        args.arg(&packed[..]);
        packed.clear();
        rmp::encode::write_str(&mut packed, "at").map_err(|e| encode_failed(&e))?;
        rmp::encode::write_uint(&mut packed, req.at).map_err(|e| encode_failed(&e))?;
        args.arg(&packed[..]);
        packed.clear();
        if inline && !preview.is_empty() {
            rmp::encode::write_str(&mut packed, "updated").map_err(|e| encode_failed(&e))?;
            rmp::encode::write_uint(&mut packed, req.at).map_err(|e| encode_failed(&e))?;
            pack_pair(&mut packed, "preview", &preview)?;
        }
        args.arg(&packed[..]);
        args.arg(keys.args_iter().len());
        debug_assert_eq!(args.args_iter().len(), BLOCK_ARGS);
        Ok(PreparedApply {
            keys,
            args,
            group: if self.config.cluster {
                self.keys
                    .pending_shard(t, c, chathub_store::PendingSharding::PerSlot)
                    .0
            } else {
                0
            },
            retry_safe: client_msg_id.is_some() || command == "set_disabled" || erase,
        })
    }

    /// The `FCALL` applying `batch` (all of one slot), in order. A command of the same
    /// tenant as the one before it goes without the tenant's keys and channels (the
    /// script uses the previous ones): each argument is a Lua string Redis makes on every
    /// call.
    fn batch_call(&self, batch: &[&PreparedApply]) -> Cmd {
        // Decided once per command (one vector per call, not per command).
        let repeats: Vec<bool> = (0..batch.len())
            .map(|i| i > 0 && repeats_tenant(batch[i - 1], batch[i]))
            .collect();
        let keys: usize = batch
            .iter()
            .zip(&repeats)
            .map(|(p, repeats)| {
                p.keys.args_iter().len() - if *repeats { TENANT_KEYS.len() } else { 0 }
            })
            .sum();
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(&super::APPLY.function).arg(keys);
        for (p, repeats) in batch.iter().zip(&repeats) {
            if *repeats {
                append_without_tenant_keys(&mut cmd, p);
            } else {
                append_args(&mut cmd, &p.keys);
            }
        }
        cmd.arg(batch.len())
            .arg(self.publish_command())
            // With an archive the stream is trimmed when settling, past what is archived.
            .arg(if self.config.archive.is_some() {
                0
            } else {
                self.config.history_max_len
            })
            .arg(if self.config.archive.is_some() {
                0
            } else {
                self.config.history_max_age_ms
            })
            .arg(self.config.dedup_window_ms)
            .arg(if self.config.cluster { "0" } else { "1" })
            .arg(self.config.inbox_stream_max_len)
            .arg(self.config.webhook_job_lease_ms);
        debug_assert_eq!(cmd.args_iter().len(), 3 + keys + HEADER_ARGS);
        for (p, repeats) in batch.iter().zip(&repeats) {
            if *repeats {
                append_without_tenant_args(&mut cmd, p);
            } else {
                append_args(&mut cmd, &p.args);
            }
        }
        cmd
    }
}

/// Where a command's tenant keys sit among its keys when the queue is updated in the
/// same step (inbox, the three queue indexes, inbox stream, webhook jobs).
const TENANT_KEYS: std::ops::Range<usize> = 4..10;

/// Its agents' channels among its arguments (`lua/apply.lua`: a+14, a+15).
const AGENTS_CHANNEL_ARGS: std::ops::Range<usize> = 14..16;

/// Its key count among its arguments (the block's last).
const KEY_COUNT_ARG: usize = BLOCK_ARGS - 1;

/// The `i`th argument of `cmd`.
fn nth_arg(cmd: &Cmd, i: usize) -> Option<&[u8]> {
    match cmd.args_iter().nth(i) {
        Some(Arg::Simple(bytes)) => Some(bytes),
        _ => None,
    }
}

/// Whether `p` updates the same tenant's queue in the same step as `previous`, the
/// command before it in the call (then it can go without the tenant's keys).
fn repeats_tenant(previous: &PreparedApply, p: &PreparedApply) -> bool {
    let inline = |p: &PreparedApply| {
        p.keys.args_iter().len() >= TENANT_KEYS.end
            && nth_arg(&p.args, AGENTS_CHANNEL_ARGS.start).is_some_and(|c| !c.is_empty())
    };
    inline(previous)
        && inline(p)
        && nth_arg(&previous.keys, TENANT_KEYS.start) == nth_arg(&p.keys, TENANT_KEYS.start)
}

/// Appends `p`'s keys but its tenant's.
fn append_without_tenant_keys(to: &mut Cmd, p: &PreparedApply) {
    for (i, arg) in p.keys.args_iter().enumerate() {
        if let Arg::Simple(bytes) = arg
            && !TENANT_KEYS.contains(&i)
        {
            to.arg(bytes);
        }
    }
}

/// Appends `p`'s arguments with its agents' channels left empty and its key count less
/// its tenant's keys.
fn append_without_tenant_args(to: &mut Cmd, p: &PreparedApply) {
    for (i, arg) in p.args.args_iter().enumerate() {
        if AGENTS_CHANNEL_ARGS.contains(&i) {
            to.arg("");
        } else if i == KEY_COUNT_ARG {
            to.arg(p.keys.args_iter().len() - TENANT_KEYS.len());
        } else if let Arg::Simple(bytes) = arg {
            to.arg(bytes);
        }
    }
}

/// Appends every argument of `from` to `to`.
fn append_args(to: &mut Cmd, from: &Cmd) {
    for arg in from.args_iter() {
        if let Arg::Simple(bytes) = arg {
            to.arg(bytes);
        }
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisOwnership<C> {
    /// Applies `batch` (all of one slot) with one script call: per command, its outcome
    /// or why it failed. A call on a dropped connection is retried once, on a new one,
    /// for the commands that are safe to apply twice; the others answer `unavailable`
    /// (whether they applied is unknown).
    pub(super) async fn apply_batch(
        &self,
        batch: &[&PreparedApply],
    ) -> Vec<Result<RawOutcome, OwnershipError>> {
        match self.call(batch).await {
            Ok(outcomes) => outcomes,
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                tracing::debug!(error = %e, "redis connection lost; retrying what is safe");
                let safe: Vec<&PreparedApply> =
                    batch.iter().copied().filter(|p| p.retry_safe).collect();
                let mut retried = if safe.is_empty() {
                    Vec::new()
                } else {
                    match self.call(&safe).await {
                        Ok(outcomes) => outcomes,
                        Err(e) => safe
                            .iter()
                            .map(|_| Err(OwnershipError::from_redis(e.clone())))
                            .collect(),
                    }
                }
                .into_iter();
                batch
                    .iter()
                    .map(|p| match p.retry_safe.then(|| retried.next()).flatten() {
                        Some(outcome) => outcome,
                        None => Err(OwnershipError::from_redis(e.clone())),
                    })
                    .collect()
            }
            Err(e) => batch
                .iter()
                .map(|_| Err(OwnershipError::from_redis(e.clone())))
                .collect(),
        }
    }

    /// One function call; loads the library when Redis does not know the function (a
    /// restart without persistence, `FUNCTION FLUSH`, a first call).
    async fn call(
        &self,
        batch: &[&PreparedApply],
    ) -> Result<Vec<Result<RawOutcome, OwnershipError>>, redis::RedisError> {
        let cmd = self.batch_call(batch);
        let mut conn = self.conn.clone();
        let reply: Value = match cmd.query_async(&mut conn).await {
            Err(e) if is_function_missing(&e) => {
                load_library(&mut conn).await?;
                cmd.query_async(&mut conn).await?
            }
            other => other?,
        };
        let Value::Array(items) = reply else {
            return Ok(batch
                .iter()
                .map(|_| {
                    Err(OwnershipError::Corrupt(
                        "script result: not an array".into(),
                    ))
                })
                .collect());
        };
        if items.len() != batch.len() {
            return Ok(batch
                .iter()
                .map(|_| {
                    Err(OwnershipError::Corrupt(format!(
                        "script result: {} outcomes for {} commands",
                        items.len(),
                        batch.len()
                    )))
                })
                .collect());
        }
        Ok(items.into_iter().map(parse_outcome).collect())
    }
}

/// Whether Redis answered that it has no such function (`ERR Function not found`).
fn is_function_missing(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
        && e.detail()
            .is_some_and(|detail| detail.starts_with("Function not found"))
}

/// Loads the apply library (`FUNCTION LOAD`: on a cluster, on every master). Another
/// node may have loaded the same version meanwhile: that answer is success too.
async fn load_library<C: ConnectionLike>(conn: &mut C) -> Result<(), redis::RedisError> {
    let loaded: Result<Value, _> = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(&super::APPLY.source)
        .query_async(conn)
        .await;
    match loaded {
        Err(e) if e.detail().is_some_and(|d| d.contains("already exists")) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Reads one command's answer (see `lua/apply.lua`, "Returns").
fn parse_outcome(item: Value) -> Result<RawOutcome, OwnershipError> {
    let corrupt = |what: &str| OwnershipError::Corrupt(format!("script result: {what}"));
    let items = match item {
        Value::Array(items) => items,
        Value::ServerError(e) => return Err(OwnershipError::Internal(format!("script: {e:?}"))),
        _ => return Err(corrupt("an outcome is not an array")),
    };
    let mut items = items.into_iter();
    let kind = bytes_of(items.next()).ok_or_else(|| corrupt("no outcome"))?;
    match kind.as_slice() {
        b"done" => {
            let state = state_of(&mut items)?;
            let queued_since = int_of(items.next()).ok_or_else(|| corrupt("no queued_since"))?;
            let ack = bytes_of(items.next()).ok_or_else(|| corrupt("no ack"))?;
            let events = items
                .map(|v| {
                    let bytes = bytes_of(Some(v)).ok_or_else(|| corrupt("an event"))?;
                    rmp_serde::from_slice::<Event>(&bytes)
                        .map_err(|e| OwnershipError::Corrupt(format!("script event: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RawOutcome::Done {
                state,
                queued_since: (queued_since > 0).then_some(queued_since),
                earlier_ack: (!ack.is_empty()).then_some(ack),
                events,
            })
        }
        b"conflict" => {
            let state = state_of(&mut items)?;
            Ok(RawOutcome::Conflict {
                owner: state
                    .owner
                    .as_ref()
                    .map_or_else(String::new, |o| o.to_string()),
                epoch: state.epoch,
                state,
            })
        }
        b"erased" => {
            let state = state_of(&mut items)?;
            let mut count = || int_of(items.next()).ok_or_else(|| corrupt("an erased count"));
            let removed = crate::Erased {
                history_events: count()?,
                idempotency_keys: count()?,
                read_marks: count()?,
                queue_entries: count()?,
                inbox_changes: count()?,
                webhook_jobs: count()?,
                archived_events: 0,
            };
            Ok(RawOutcome::Erased { state, removed })
        }
        b"refused" => {
            let reason = bytes_of(items.next()).ok_or_else(|| corrupt("no reason"))?;
            Ok(RawOutcome::Refused(
                String::from_utf8(reason).map_err(|_| corrupt("reason"))?,
            ))
        }
        b"error" => {
            let message = bytes_of(items.next()).unwrap_or_default();
            Err(OwnershipError::Internal(
                String::from_utf8_lossy(&message).into_owned(),
            ))
        }
        other => Err(OwnershipError::Internal(format!(
            "unknown outcome {}",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// A conversation state as the script answers it: status, owner ('' none), epoch, seq,
/// disabled (0/1), open survey (0 none).
fn state_of(items: &mut impl Iterator<Item = Value>) -> Result<ConversationState, OwnershipError> {
    let corrupt = |what: &str| OwnershipError::Corrupt(format!("script result: {what}"));
    let status = bytes_of(items.next()).ok_or_else(|| corrupt("no status"))?;
    let status = match status.as_slice() {
        b"new" => Status::New,
        b"unanswered" => Status::Unanswered,
        b"active" => Status::Active,
        b"finished" => Status::Finished,
        _ => return Err(corrupt("unknown status")),
    };
    Ok(ConversationState {
        status,
        owner: agent_of(items.next())?,
        epoch: int_of(items.next()).ok_or_else(|| corrupt("no epoch"))?,
        seq: int_of(items.next()).ok_or_else(|| corrupt("no seq"))?,
        disabled: int_of(items.next()).ok_or_else(|| corrupt("no disabled"))? == 1,
        survey: match int_of(items.next()).ok_or_else(|| corrupt("no survey"))? {
            0 => None,
            seq => Some(seq),
        },
    })
}

fn bytes_of(v: Option<Value>) -> Option<Vec<u8>> {
    match v? {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn int_of(v: Option<Value>) -> Option<u64> {
    match v? {
        Value::Int(i) => u64::try_from(i).ok(),
        _ => None,
    }
}

fn agent_of(v: Option<Value>) -> Result<Option<chathub_domain::AgentId>, OwnershipError> {
    let bytes =
        bytes_of(v).ok_or_else(|| OwnershipError::Corrupt("script result: owner".into()))?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let id = String::from_utf8(bytes)
        .map_err(|_| OwnershipError::Corrupt("script result: owner".into()))?;
    chathub_domain::AgentId::new(id)
        .map(Some)
        .map_err(|e| OwnershipError::Corrupt(format!("script result: owner: {e}")))
}

/// Most commands the writer takes at once (they still go at most [`APPLY_BATCH`] per
/// call).
const WRITER_TAKE: usize = 1024;

/// The node's apply writer: takes whatever commands are pending (at least one, at most
/// [`WRITER_TAKE`]), sends them in calls of at most [`APPLY_BATCH`] per slot (all calls
/// concurrently), then answers each caller. Ends when every handle of the backend is gone.
///
/// Stale losers are answered without a round trip of their own. Each call tells the
/// writer the state of the conversations whose epoch it moved or found stale, as it was
/// at some moment after the call was sent. An agent's command that was already waiting
/// then, and that the domain's rules (`chathub_domain::apply_in`, the same the script
/// restates) decide as a conflict against that state, gets that conflict at once: the
/// state was current at a moment inside the command's own wait, so it is the answer Redis
/// would have given then (linearizable), and only Redis ever decides a winner. For that,
/// a round sends at most one agent command per conversation and holds the later ones
/// (and whatever follows them on that conversation, in order) to the next round, which
/// answers the stale ones from what the sent one revealed. In a take race of a thousand
/// agents a node thus sends one take per round trip and answers the rest itself; a
/// conversation's second agent command in one round waits one round trip.
pub(super) async fn write_commands<C: ConnectionLike + Clone + Send + Sync + 'static>(
    ownership: RedisOwnership<C>,
    mut rx: mpsc::Receiver<ApplyJob>,
) {
    let mut jobs: Vec<ApplyJob> = Vec::with_capacity(APPLY_BATCH);
    // Held from the last round: they come first, in order.
    let mut held: Vec<ApplyJob> = Vec::new();
    let mut known: Known = HashMap::new();
    loop {
        if held.is_empty() {
            if rx.recv_many(&mut jobs, WRITER_TAKE).await == 0 {
                break;
            }
        } else {
            // Held commands go now; take what else is already waiting, without waiting.
            while jobs.len() < WRITER_TAKE {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let round: Vec<ApplyJob> = held.drain(..).chain(jobs.drain(..)).collect();
        let fates = fates(&known, &round);
        let mut to_send = Vec::with_capacity(round.len());
        for (job, fate) in round.into_iter().zip(fates) {
            match fate {
                Fate::Answer(conflict) => {
                    let _ = job.done.send(Ok((job.request, conflict)));
                }
                Fate::Hold => held.push(job),
                Fate::Send => to_send.push(job),
            }
        }
        known.clear();
        if to_send.is_empty() {
            continue;
        }
        // Stable: each slot's commands keep their order of arrival.
        to_send.sort_by_key(|job| job.prepared.group);
        let sent = Instant::now();
        let outcomes: Vec<_> = {
            let prepared: Vec<&PreparedApply> = to_send.iter().map(|job| &job.prepared).collect();
            let calls = prepared
                .chunk_by(|a, b| a.group == b.group)
                .flat_map(|group| group.chunks(APPLY_BATCH))
                .map(|batch| ownership.apply_batch(batch));
            futures::future::join_all(calls)
                .await
                .into_iter()
                .flatten()
                .collect()
        };
        for (job, outcome) in to_send.into_iter().zip(outcomes) {
            // Where an epoch moved or was found stale (a take, a lost race): the last
            // outcome of a conversation in these calls is its latest state. Plain
            // messages (the common command) record nothing.
            let revealed = match &outcome {
                Ok(RawOutcome::Conflict { state, .. } | RawOutcome::Erased { state, .. }) => {
                    Some(state)
                }
                Ok(RawOutcome::Done { state, events, .. })
                    if events
                        .iter()
                        .any(|e| matches!(e.body, chathub_domain::EventBody::Status { .. })) =>
                {
                    Some(state)
                }
                _ => None,
            };
            match revealed {
                Some(state) => {
                    known
                        .entry(job.request.tenant.clone())
                        .or_default()
                        .insert(job.request.conversation.clone(), (state.clone(), sent));
                }
                // A later change of the conversation in these calls: what was recorded
                // of it is no longer its latest state.
                None => {
                    if let Some(of_tenant) = known.get_mut(&job.request.tenant) {
                        of_tenant.remove(&job.request.conversation);
                    }
                }
            }
            let _ = job.done.send(outcome.map(|raw| (job.request, raw)));
        }
    }
}

/// What becomes of a command in a round of the writer.
enum Fate {
    /// A stale loser: answered with this conflict.
    Answer(RawOutcome),
    /// To the next round (another agent command of its conversation goes in this one).
    Hold,
    /// In this round's calls.
    Send,
}

/// The fate of each command of `round`, in order (see [`write_commands`]).
fn fates(known: &Known, round: &[ApplyJob]) -> Vec<Fate> {
    // Conversations with an agent command going out, and those with one held: borrowed
    // from the round, and allocated only when agents' commands are in it.
    let mut sending: HashSet<(&TenantId, &ConversationId)> = HashSet::new();
    let mut holding: HashSet<(&TenantId, &ConversationId)> = HashSet::new();
    round
        .iter()
        .map(|job| {
            let key = (&job.request.tenant, &job.request.conversation);
            if !holding.is_empty() && holding.contains(&key) {
                // Behind a held command of its conversation: keeps its place.
                return Fate::Hold;
            }
            if let Some(conflict) = stale_loss(known, job) {
                return Fate::Answer(conflict);
            }
            if matches!(job.request.actor, chathub_domain::Actor::Agent { .. })
                && !sending.insert(key)
            {
                holding.insert(key);
                return Fate::Hold;
            }
            Fate::Send
        })
        .collect()
}

/// What the writer's last calls revealed: per tenant and conversation, its state and when
/// the call that read it was sent.
type Known = HashMap<TenantId, HashMap<ConversationId, (ConversationState, Instant)>>;

/// The conflict `job` meets, if the writer already knows it: it waited since before the
/// call that read its conversation's state was sent, and the domain's rules decide it a
/// conflict against that state.
fn stale_loss(known: &Known, job: &ApplyJob) -> Option<RawOutcome> {
    let req = &job.request;
    // Only an agent's command carries an epoch that can be stale.
    if !matches!(req.actor, chathub_domain::Actor::Agent { .. }) {
        return None;
    }
    let (state, read_by) = known.get(&req.tenant)?.get(&req.conversation)?;
    if job.submitted >= *read_by {
        return None;
    }
    match chathub_domain::apply_in(&req.context, state, &req.actor, &req.command, req.at) {
        Outcome::Conflict { owner, epoch } => Some(RawOutcome::Conflict {
            owner: owner.map_or_else(String::new, |o| o.to_string()),
            epoch,
            state: state.clone(),
        }),
        _ => None,
    }
}
