//! What the tiers that keep rows (the data directory's SQLite, the archive's PostgreSQL)
//! index of an event: one definition for both.

use chathub_domain::{Event, EventBody};

/// An event's indexed columns: kind, author role, author id and the text search finds.
pub(crate) struct Indexed<'a> {
    /// The event's kind (`message`, `status`, `note`, `edited`…).
    pub kind: &'static str,
    /// Who wrote or caused it: role.
    pub role: &'static str,
    /// Who wrote or caused it: id.
    pub id: &'a str,
    /// What search finds: a message's text as history shows it now (an engagement's
    /// title, an attachment's file name); nothing for a removed message or other events.
    pub text: Option<&'a str>,
}

/// The indexed columns of `event`.
pub(crate) fn indexed(event: &Event) -> Indexed<'_> {
    let (kind, role, id, text) = match &event.body {
        EventBody::Message {
            author, content, ..
        } => {
            let text = content.preview();
            (
                "message",
                author.role.as_str(),
                author.id.as_str(),
                (!text.is_empty()).then_some(text),
            )
        }
        EventBody::Status { by, .. } => ("status", by.role.as_str(), by.id.as_str(), None),
        // A private note: kept, not searched (search serves what is also the end user's
        // conversation).
        EventBody::Note { author, .. } => ("note", author.role.as_str(), author.id.as_str(), None),
        // A bot's handoff summary: agents only like a note, not searched.
        EventBody::Handoff { author, .. } => {
            ("handoff", author.role.as_str(), author.id.as_str(), None)
        }
        // The scanner's verdict: the server speaks for it.
        EventBody::AttachmentChecked { .. } => ("attachment_checked", "system", "scanner", None),
        // An amendment is found through its message (folded with it), not by itself.
        EventBody::Edited { author, .. } => {
            ("edited", author.role.as_str(), author.id.as_str(), None)
        }
        EventBody::Unsent { author, .. } => {
            ("unsent", author.role.as_str(), author.id.as_str(), None)
        }
        EventBody::Redacted { by, .. } => ("redacted", by.role.as_str(), by.id.as_str(), None),
        // The survey a finish asks: the server asks it for the tenant.
        EventBody::Survey { .. } => ("survey", "system", "survey", None),
        // The business hours' automatic reply: the server's, not searched.
        EventBody::AutoReply { .. } => ("auto_reply", "system", "hours", None),
        // An answer is a rating, read through reports rather than search.
        EventBody::SurveyAnswered { author, .. } => (
            "survey_answered",
            author.role.as_str(),
            author.id.as_str(),
            None,
        ),
    };
    Indexed {
        kind,
        role,
        id,
        text,
    }
}
