//! Reports: `stats` (agents: the day's figures in the console) and the admin API's
//! cycles CSV (`GET /admin/v1/reports/cycles.csv`), both from the record tier's events,
//! streamed through [`chathub_store::report`].

use super::{Ctx, Failure, store_failed};
use crate::Backend;
use chathub_protocol::{ErrorCode, StatsReply};
use chathub_store::report::{CycleRow, TotalsBuilder};
use tokio::sync::mpsc;

/// Rows buffered between the reader and the consumer (back pressure past it).
pub(crate) const ROW_BUFFER: usize = 256;

/// Midnight (UTC) of the day `now` (ms) falls in.
pub(crate) fn start_of_day(now: u64) -> u64 {
    now - now % 86_400_000
}

/// A time given as ms since the Unix epoch, an RFC 3339 time or a `YYYY-MM-DD` day
/// (midnight UTC).
pub(crate) fn parse_time(given: &str, name: &str) -> Result<u64, Failure> {
    if let Ok(ms) = given.parse::<u64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(given) {
        return u64::try_from(t.timestamp_millis())
            .map_err(|_| Failure::bad_request(format!("`{name}` is before 1970")));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(given, "%Y-%m-%d") {
        let ms = day
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis();
        return u64::try_from(ms)
            .map_err(|_| Failure::bad_request(format!("`{name}` is before 1970")));
    }
    Err(Failure::bad_request(format!(
        "invalid `{name}` {given:?}: ms since the Unix epoch, an RFC 3339 time or YYYY-MM-DD"
    )))
}

/// The range `[from, to)`: by default from today's midnight (UTC) to now.
pub(crate) fn range(from: Option<u64>, to: Option<u64>) -> Result<(u64, u64), Failure> {
    let now = crate::auth::now_millis();
    let to = to.unwrap_or(now.saturating_add(1));
    let from = from.unwrap_or_else(|| start_of_day(now));
    if from > to {
        return Err(Failure::bad_request("`from` is after `to`"));
    }
    Ok((from, to))
}

fn require_records<K: Backend>(cx: &Ctx<'_, K>) -> Result<(), Failure> {
    if cx.node.backend.has_record_tier() {
        return Ok(());
    }
    Err(Failure::new(
        ErrorCode::Unavailable,
        "reports need the record tier: the data directory (embedded, not --ephemeral) or \
         an archive (cluster mode)",
    ))
}

/// The task reading a report: whether it read every row.
pub(crate) type Reader = tokio::task::JoinHandle<Result<(), chathub_store::StoreError>>;

/// Starts streaming the tenant's cycles in `[from, to)`: rows arrive on the receiver as
/// they are read; the reader stops when the receiver is dropped, and its handle says
/// whether it read everything.
pub(crate) fn cycles<K: Backend>(
    cx: &Ctx<'_, K>,
    from: u64,
    to: u64,
) -> Result<(mpsc::Receiver<CycleRow>, Reader), Failure> {
    require_records(cx)?;
    let (tx, rx) = mpsc::channel(ROW_BUFFER);
    let node = cx.node.clone();
    let tenant = cx.identity.tenant.clone();
    let reader = tokio::spawn(async move {
        let read = node.backend.report_cycles(&tenant, from, to, tx).await;
        if let Err(e) = &read {
            tracing::warn!(error = %e, "report stopped");
        }
        read
    });
    Ok((rx, reader))
}

/// `stats`: totals over the cycles opened in the range (default: today so far).
pub(crate) async fn stats<K: Backend>(
    cx: &Ctx<'_, K>,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<StatsReply, Failure> {
    cx.require_agent("stats")?;
    let (from, to) = range(from, to)?;
    require_records(cx)?;
    let (tx, mut rx) = mpsc::channel(ROW_BUFFER);
    let read = cx
        .node
        .backend
        .report_cycles(&cx.identity.tenant, from, to, tx);
    let mut totals = TotalsBuilder::default();
    let add = async {
        while let Some(row) = rx.recv().await {
            totals.add(&row);
        }
    };
    let (read, ()) = tokio::join!(read, add);
    read.map_err(store_failed)?;
    let t = totals.build();
    Ok(StatsReply {
        from,
        to,
        opened: t.opened,
        answered: t.answered,
        finished: t.finished,
        end_user_messages: t.end_user_messages,
        agent_messages: t.agent_messages,
        mean_waiting_ms: t.mean_waiting_ms,
        mean_handling_ms: t.mean_handling_ms,
        ratings: t.ratings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_three_spellings() {
        let day = 1_764_547_200_000; // 2025-12-01T00:00:00Z
        assert_eq!(parse_time("2025-12-01", "from").ok(), Some(day));
        assert_eq!(
            parse_time("2025-12-01T00:00:01Z", "from").ok(),
            Some(day + 1000)
        );
        assert_eq!(parse_time("1764547200000", "from").ok(), Some(day));
        assert!(parse_time("yesterday", "from").is_err());
        assert_eq!(start_of_day(day + 5_000_000), day);
    }
}
