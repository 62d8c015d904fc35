//! Full-text search over a tenant's messages in the record tier: the query language
//! (web-search style, parsed once here for every backend), the filters, and the hits.
//!
//! The language is what search boxes accept (and what PostgreSQL's
//! `websearch_to_tsquery` reads): words, all of which must appear; `"quoted phrases"`;
//! `-word` or `-"phrase"` to exclude; `OR` between two terms for either. Matching is by
//! token, case- and accent-insensitive; punctuation separates tokens.

use crate::StoreError;
use chathub_domain::{AgentId, Author, ConversationId, EndUserId, Status};

/// Longest query accepted by default, in bytes (longer: `too_large`).
pub const MAX_QUERY_BYTES: usize = 256;

/// One term of a parsed query: a phrase of one or more words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The words, in order (a single word is a phrase of one).
    pub words: Vec<String>,
    /// Excluded (`-word`).
    pub negated: bool,
}

/// A parsed query: groups of alternatives (`a OR b`), all of which must match, and terms
/// that must not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQuery {
    /// Every group must match; a group matches when one of its terms does.
    pub all_of: Vec<Vec<Term>>,
    /// None of these may match.
    pub none_of: Vec<Term>,
}

/// Splits text into the words a phrase is made of: letters and digits, punctuation and
/// spaces between them dropped (the tokenizers do the same).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The words of `text` joined by spaces: what a backend whose own tokenizer differs
/// indexes, so that it finds what the query's words say.
pub fn index_text(text: &str) -> String {
    words(text).join(" ")
}

/// Parses a web-search style query. An empty query, one with nothing to search for, or
/// one that only excludes is [`StoreError::Invalid`].
pub fn parse(query: &str) -> Result<ParsedQuery, StoreError> {
    // Lexing: quoted phrases (an unclosed quote runs to the end), `-` prefixes, `OR`.
    #[derive(Debug)]
    enum Token {
        Term(Term),
        Or,
    }
    let mut tokens = Vec::new();
    let mut rest = query.trim();
    while !rest.is_empty() {
        let (negated, body) = match rest.strip_prefix('-') {
            Some(after) if !after.starts_with(char::is_whitespace) && !after.is_empty() => {
                (true, after)
            }
            _ => (false, rest),
        };
        let (text, quoted, next) = if let Some(inner) = body.strip_prefix('"') {
            match inner.find('"') {
                Some(end) => (&inner[..end], true, &inner[end + 1..]),
                None => (inner, true, ""),
            }
        } else {
            let end = body.find(char::is_whitespace).unwrap_or(body.len());
            (&body[..end], false, &body[end..])
        };
        rest = next.trim_start();
        if !quoted && !negated && text == "OR" {
            tokens.push(Token::Or);
            continue;
        }
        let words = words(text);
        if !words.is_empty() {
            tokens.push(Token::Term(Term { words, negated }));
        }
    }
    let mut parsed = ParsedQuery {
        all_of: Vec::new(),
        none_of: Vec::new(),
    };
    let mut joining = false;
    for token in tokens {
        match token {
            Token::Or => joining = !parsed.all_of.is_empty(),
            Token::Term(term) if term.negated => {
                parsed.none_of.push(term);
                joining = false;
            }
            Token::Term(term) => {
                match parsed.all_of.last_mut() {
                    Some(group) if joining => group.push(term),
                    _ => parsed.all_of.push(vec![term]),
                }
                joining = false;
            }
        }
    }
    if parsed.all_of.is_empty() {
        return Err(StoreError::Invalid(
            "search query: give at least one word to find (letters or digits, not only exclusions)",
        ));
    }
    Ok(parsed)
}

/// Which kind of message to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Text messages.
    Text,
    /// Engagements sent by agents (found by their title).
    Engagement,
    /// Attachments (found by their file name).
    Attachment,
}

impl MessageKind {
    /// The kind's name in messages (`content.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Engagement => "engagement",
            MessageKind::Attachment => "attachment",
        }
    }
}

/// A search within one tenant.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// What to find.
    pub query: ParsedQuery,
    /// Only this end user's conversation.
    pub end_user: Option<EndUserId>,
    /// Only conversations this agent wrote in.
    pub agent: Option<AgentId>,
    /// Only conversations in this status now.
    pub status: Option<Status>,
    /// Only messages at or after this time (ms).
    pub from: Option<u64>,
    /// Only messages before this time (ms).
    pub to: Option<u64>,
    /// Only messages of this kind.
    pub kind: Option<MessageKind>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: usize,
}

impl SearchQuery {
    /// `query` over the whole tenant (no filter, first page), `limit` hits per page.
    pub fn unfiltered(query: ParsedQuery, limit: usize) -> SearchQuery {
        SearchQuery {
            query,
            end_user: None,
            agent: None,
            status: None,
            from: None,
            to: None,
            kind: None,
            cursor: None,
            limit,
        }
    }
}

/// A piece of a hit's snippet: text, and whether it matched the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnippetPart {
    /// The text.
    pub text: String,
    /// Whether it is a match.
    pub hit: bool,
}

/// One message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// Its conversation.
    pub conversation: ConversationId,
    /// Its `seq` (open the conversation's history there).
    pub seq: u64,
    /// When it was written, ms.
    pub at: u64,
    /// Who wrote it.
    pub author: Author,
    /// Its kind.
    pub kind: MessageKind,
    /// Around the match, with the matches marked.
    pub snippet: Vec<SnippetPart>,
}

/// One page of hits, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchPage {
    /// The hits.
    pub hits: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Full-text search of a tenant's messages in the record tier. Never crosses tenants;
/// hits are newest first; a cursor from another query is [`StoreError::Invalid`] or an
/// empty page, never another tenant's data.
pub trait Search: Send + Sync + 'static {
    /// One page of hits for `query` within `tenant`.
    fn search(
        &self,
        tenant: &chathub_domain::TenantId,
        query: SearchQuery,
    ) -> impl std::future::Future<Output = Result<SearchPage, StoreError>> + Send;
}

/// The hit of a stored message event whose snippet marks its matches with `open` and
/// `close` (each backend's highlighter is told to use them).
pub(crate) fn hit(
    conversation: &str,
    event: chathub_domain::Event,
    marked_snippet: &str,
    open: char,
    close: char,
) -> Result<SearchHit, StoreError> {
    use chathub_domain::{EventBody, MessageContent};
    let EventBody::Message {
        author, content, ..
    } = event.body
    else {
        return Err(StoreError::corrupt("search hit", "not a message"));
    };
    let kind = match content {
        MessageContent::Text { .. } => MessageKind::Text,
        MessageContent::Engagement { .. } => MessageKind::Engagement,
        MessageContent::Attachment { .. } => MessageKind::Attachment,
        // A removed message has no text left to be found by: never a hit.
        MessageContent::Removed {} => {
            return Err(StoreError::corrupt("search hit", "a removed message"));
        }
    };
    Ok(SearchHit {
        conversation: ConversationId::new(conversation)
            .map_err(|e| StoreError::corrupt("conversation id", e))?,
        seq: event.seq,
        at: event.at,
        author,
        kind,
        snippet: snippet_parts(marked_snippet, open, close),
    })
}

/// Splits a snippet whose matches are wrapped in `open` and `close` into parts.
pub(crate) fn snippet_parts(marked: &str, open: char, close: char) -> Vec<SnippetPart> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut hit = false;
    for c in marked.chars() {
        if c == open || c == close {
            if !current.is_empty() {
                parts.push(SnippetPart {
                    text: std::mem::take(&mut current),
                    hit,
                });
            }
            hit = c == open;
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        parts.push(SnippetPart { text: current, hit });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(words: &[&str], negated: bool) -> Term {
        Term {
            words: words.iter().map(|w| w.to_string()).collect(),
            negated,
        }
    }

    #[test]
    fn words_phrases_exclusions_and_or() {
        let q = parse(r#"coupon "does not work" -refund late OR delayed"#).unwrap();
        assert_eq!(
            q.all_of,
            vec![
                vec![t(&["coupon"], false)],
                vec![t(&["does", "not", "work"], false)],
                vec![t(&["late"], false), t(&["delayed"], false)],
            ]
        );
        assert_eq!(q.none_of, vec![t(&["refund"], true)]);
    }

    #[test]
    fn punctuation_splits_and_unclosed_quotes_run_to_the_end() {
        let q = parse(r#"e-mail "half open"#).unwrap();
        assert_eq!(
            q.all_of,
            vec![
                vec![t(&["e", "mail"], false)],
                vec![t(&["half", "open"], false)]
            ]
        );
        // A lone OR, a dangling OR and a bare dash are not operators.
        let q = parse("OR coupon OR").unwrap();
        assert_eq!(q.all_of, vec![vec![t(&["coupon"], false)]]);
        let q = parse("- coupon").unwrap();
        assert_eq!(q.all_of, vec![vec![t(&["coupon"], false)]]);
    }

    #[test]
    fn nothing_to_find_is_invalid() {
        for bad in ["", "   ", "-refund", "\"\"", "!!! ???", "OR", "-\"a b\""] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn snippets_split_at_the_marks() {
        let parts = snippet_parts("my \u{1}coupon\u{2} works", '\u{1}', '\u{2}');
        assert_eq!(
            parts,
            vec![
                SnippetPart {
                    text: "my ".into(),
                    hit: false
                },
                SnippetPart {
                    text: "coupon".into(),
                    hit: true
                },
                SnippetPart {
                    text: " works".into(),
                    hit: false
                },
            ]
        );
    }
}
