//! A tenant's business hours: a weekly schedule and holidays in its time zone.
//!
//! Outside hours the clocks of the alert schedule and the stall policy pause (they count
//! only open time), and an end user who writes gets one automatic reply per wait saying
//! when the team is back ([`BusinessHours::closed_reply`]). Everything here is a pure
//! function of the schedule and a time (ms since the Unix epoch).

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most opening ranges per day.
pub const MAX_RANGES_PER_DAY: usize = 4;
/// Most holidays.
pub const MAX_HOLIDAYS: usize = 400;
/// Longest closed reply template, characters.
pub const MAX_REPLY_CHARS: usize = 500;
/// The automatic reply of a tenant that set none.
pub const DEFAULT_CLOSED_REPLY: &str =
    "We are closed right now. We are back at {back_at} ({time_zone}), in about {in}.";
/// How far ahead the next opening is looked for (a schedule open less often is treated
/// as never open again).
const LOOKAHEAD_DAYS: i64 = 400;

/// A tenant's business hours (as the admin API takes and shows them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// IANA time zone, e.g. `Europe/Lisbon`.
    pub time_zone: String,
    /// Opening ranges per weekday (`mon` … `sun`), each `HH:MM-HH:MM` (end `24:00`
    /// allowed); a day left out is closed.
    pub weekly: BTreeMap<String, Vec<String>>,
    /// Days closed all day, `YYYY-MM-DD` in the time zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
    /// The automatic reply outside hours: `{back_at}` (e.g. `09:00`, with the weekday
    /// when not today), `{time_zone}`, `{in}` (e.g. `3 h`). Default
    /// [`DEFAULT_CLOSED_REPLY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reply: Option<String>,
}

/// Business hours checked and ready to compute with.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: Tz,
    /// Per weekday (Monday first), opening ranges as seconds of the day, sorted.
    days: [Vec<(u32, u32)>; 7],
    holidays: Vec<NaiveDate>,
    reply: String,
    zone: String,
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

fn seconds_of(text: &str) -> Option<u32> {
    if text == "24:00" {
        return Some(86_400);
    }
    let t = NaiveTime::parse_from_str(text, "%H:%M").ok()?;
    Some(chrono::Timelike::num_seconds_from_midnight(&t))
}

impl BusinessHours {
    /// Checks the schedule; the error says what is wrong.
    pub fn schedule(&self) -> Result<Schedule, String> {
        let tz: Tz = self
            .time_zone
            .parse()
            .map_err(|_| format!("unknown time zone {:?}", self.time_zone))?;
        let mut days: [Vec<(u32, u32)>; 7] = Default::default();
        for (name, ranges) in &self.weekly {
            let Some(i) = DAYS.iter().position(|(d, _)| d == name) else {
                return Err(format!("unknown day {name:?} (mon … sun)"));
            };
            if ranges.len() > MAX_RANGES_PER_DAY {
                return Err(format!("{name}: at most {MAX_RANGES_PER_DAY} ranges"));
            }
            for range in ranges {
                let parsed = range
                    .split_once('-')
                    .and_then(|(a, b)| Some((seconds_of(a)?, seconds_of(b)?)));
                match parsed {
                    Some((start, end)) if start < end => days[i].push((start, end)),
                    _ => {
                        return Err(format!(
                            "{name}: {range:?} is not HH:MM-HH:MM, start before end"
                        ));
                    }
                }
            }
            days[i].sort_unstable();
            if days[i].windows(2).any(|w| w[0].1 > w[1].0) {
                return Err(format!("{name}: ranges overlap"));
            }
        }
        if days.iter().all(Vec::is_empty) {
            return Err("`weekly` opens on no day".into());
        }
        if self.holidays.len() > MAX_HOLIDAYS {
            return Err(format!("at most {MAX_HOLIDAYS} holidays"));
        }
        let mut holidays = Vec::with_capacity(self.holidays.len());
        for day in &self.holidays {
            holidays.push(
                NaiveDate::parse_from_str(day, "%Y-%m-%d")
                    .map_err(|_| format!("holiday {day:?} is not YYYY-MM-DD"))?,
            );
        }
        holidays.sort_unstable();
        let reply = self
            .closed_reply
            .clone()
            .unwrap_or_else(|| DEFAULT_CLOSED_REPLY.to_owned());
        if reply.trim().is_empty() || reply.chars().count() > MAX_REPLY_CHARS {
            return Err(format!(
                "`closed_reply` must be 1 to {MAX_REPLY_CHARS} characters"
            ));
        }
        Ok(Schedule {
            tz,
            days,
            holidays,
            reply,
            zone: self.time_zone.clone(),
        })
    }
}

impl Schedule {
    /// The local date's opening ranges as instants (ms), in order.
    fn ranges_on(&self, date: NaiveDate) -> Vec<(u64, u64)> {
        if self.holidays.binary_search(&date).is_ok() {
            return Vec::new();
        }
        let day = date.weekday().num_days_from_monday() as usize;
        self.days[day]
            .iter()
            .filter_map(|&(start, end)| {
                Some((self.instant(date, start)?, self.instant(date, end)?))
            })
            .filter(|(a, b)| a < b)
            .collect()
    }

    /// The instant (ms) of `secs` into the local `date` (a time skipped by a clock change
    /// counts from just after it; one repeated, its first occurrence).
    fn instant(&self, date: NaiveDate, secs: u32) -> Option<u64> {
        let start = date.and_hms_opt(0, 0, 0)?;
        let mut local = start + Duration::seconds(i64::from(secs));
        for _ in 0..4 {
            match self.tz.from_local_datetime(&local) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    return u64::try_from(t.timestamp_millis()).ok();
                }
                LocalResult::None => local += Duration::minutes(30),
            }
        }
        None
    }

    fn local_date(&self, at_ms: u64) -> Option<NaiveDate> {
        let utc = DateTime::from_timestamp_millis(i64::try_from(at_ms).ok()?)?;
        Some(utc.with_timezone(&self.tz).date_naive())
    }

    /// Whether the team is open at `at_ms`.
    pub fn is_open(&self, at_ms: u64) -> bool {
        let Some(date) = self.local_date(at_ms) else {
            return false;
        };
        // A range of the day before may run past midnight only as 24:00, so today's do.
        self.ranges_on(date)
            .iter()
            .any(|&(a, b)| a <= at_ms && at_ms < b)
    }

    /// When the team next opens at or after `at_ms` (`at_ms` itself when open now);
    /// `None` when not within the next 400 days.
    pub fn next_open(&self, at_ms: u64) -> Option<u64> {
        let mut date = self.local_date(at_ms)?;
        for _ in 0..LOOKAHEAD_DAYS {
            for (a, b) in self.ranges_on(date) {
                if at_ms < b {
                    return Some(a.max(at_ms));
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// When the open or closed state at `at_ms` next changes: the closing time when open
    /// (ranges that touch, such as a day to `24:00` and the next from `00:00`, run on),
    /// the opening time when closed; `None` when not within 400 days.
    pub fn next_change(&self, at_ms: u64) -> Option<u64> {
        if !self.is_open(at_ms) {
            return self.next_open(at_ms);
        }
        let mut date = self.local_date(at_ms)?;
        let mut end: Option<u64> = None;
        for _ in 0..LOOKAHEAD_DAYS {
            for (a, b) in self.ranges_on(date) {
                match end {
                    None if a <= at_ms && at_ms < b => end = Some(b),
                    Some(e) if a <= e && b > e => end = Some(b),
                    Some(e) if a > e => return Some(e),
                    _ => {}
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// Open time between `from_ms` and `to_ms`, ms: how long a clock that pauses outside
    /// hours has run.
    pub fn open_ms_between(&self, from_ms: u64, to_ms: u64) -> u64 {
        if to_ms <= from_ms {
            return 0;
        }
        let (Some(mut date), Some(last)) = (self.local_date(from_ms), self.local_date(to_ms))
        else {
            return 0;
        };
        let mut total = 0;
        while date <= last {
            for (a, b) in self.ranges_on(date) {
                let (a, b) = (a.max(from_ms), b.min(to_ms));
                total += b.saturating_sub(a);
            }
            let Some(next) = date.succ_opt() else { break };
            date = next;
        }
        total
    }

    /// The automatic reply at `at_ms` (closed): the template with when the team is back;
    /// and that time (ms; `None`: not within 400 days, the reply then says "later").
    pub fn closed_reply(&self, at_ms: u64) -> (String, Option<u64>) {
        let back = self.next_open(at_ms);
        let (back_at, within) = match back.and_then(|ms| {
            let t =
                DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?.with_timezone(&self.tz);
            Some((ms, t))
        }) {
            Some((ms, t)) => {
                let same_day = self.local_date(at_ms) == Some(t.date_naive());
                let at = if same_day {
                    t.format("%H:%M").to_string()
                } else {
                    t.format("%A %H:%M").to_string()
                };
                (at, about(ms.saturating_sub(at_ms)))
            }
            None => ("a later date".to_owned(), "a while".to_owned()),
        };
        let text = self
            .reply
            .replace("{back_at}", &back_at)
            .replace("{time_zone}", &self.zone)
            .replace("{in}", &within);
        (text, back)
    }
}

/// A wait in words, rounded: `25 min`, `3 h`, `2 days`.
fn about(ms: u64) -> String {
    let minutes = ms.div_ceil(60_000);
    match minutes {
        0..=59 => format!("{} min", minutes.max(1)),
        60..=2_159 => format!("{} h", (minutes + 30) / 60),
        _ => format!("{} days", (minutes + 720) / 1_440),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lisbon() -> Schedule {
        BusinessHours {
            time_zone: "Europe/Lisbon".into(),
            weekly: [
                ("mon", vec!["09:00-12:30", "13:30-18:00"]),
                ("tue", vec!["09:00-18:00"]),
                ("wed", vec!["09:00-18:00"]),
                ("thu", vec!["09:00-18:00"]),
                ("fri", vec!["09:00-18:00"]),
            ]
            .into_iter()
            .map(|(d, r)| (d.to_owned(), r.into_iter().map(str::to_owned).collect()))
            .collect(),
            holidays: vec!["2026-12-25".into()],
            closed_reply: None,
        }
        .schedule()
        .unwrap()
    }

    /// ms of a UTC time.
    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> u64 {
        chrono::Utc
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .timestamp_millis() as u64
    }

    #[test]
    fn open_in_its_own_time_zone_with_holidays_and_lunch() {
        let s = lisbon();
        // Wednesday 2 December 2026: Lisbon is UTC+0 in winter.
        assert!(s.is_open(utc(2026, 12, 2, 10, 0)));
        assert!(!s.is_open(utc(2026, 12, 2, 18, 0)));
        assert!(!s.is_open(utc(2026, 12, 5, 10, 0)), "Saturday");
        assert!(!s.is_open(utc(2026, 12, 25, 10, 0)), "a holiday");
        // Monday's lunch break.
        assert!(!s.is_open(utc(2026, 12, 7, 13, 0)));
        assert!(s.is_open(utc(2026, 12, 7, 13, 30)));
        // Summer time: 09:00 in Lisbon is 08:00 UTC.
        assert!(s.is_open(utc(2026, 7, 1, 8, 0)));
        assert!(!s.is_open(utc(2026, 7, 1, 7, 59)));
    }

    #[test]
    fn the_next_opening_and_the_reply_that_says_it() {
        let s = lisbon();
        // Wednesday 20:00: back Thursday 09:00.
        let at = utc(2026, 12, 2, 20, 0);
        assert_eq!(s.next_open(at), Some(utc(2026, 12, 3, 9, 0)));
        let (text, back) = s.closed_reply(at);
        assert_eq!(back, Some(utc(2026, 12, 3, 9, 0)));
        assert_eq!(
            text,
            "We are closed right now. We are back at Thursday 09:00 (Europe/Lisbon), in about 13 h."
        );
        // Thursday 24 December 18:30: the 25th is a holiday, back on Saturday? No: the
        // 26th is a Saturday, so Monday the 28th.
        assert_eq!(
            s.next_open(utc(2026, 12, 24, 18, 30)),
            Some(utc(2026, 12, 28, 9, 0))
        );
        // Early the same day: back at 09:00 today.
        let (text, _) = s.closed_reply(utc(2026, 12, 2, 6, 0));
        assert!(
            text.contains("back at 09:00 (Europe/Lisbon), in about 3 h"),
            "{text}"
        );
        // Open now: now.
        assert_eq!(
            s.next_open(utc(2026, 12, 2, 10, 0)),
            Some(utc(2026, 12, 2, 10, 0))
        );
    }

    #[test]
    fn the_next_change_of_state() {
        let s = lisbon();
        // Monday 10:00: closes for lunch at 12:30; at lunch, opens at 13:30.
        assert_eq!(
            s.next_change(utc(2026, 12, 7, 10, 0)),
            Some(utc(2026, 12, 7, 12, 30))
        );
        assert_eq!(
            s.next_change(utc(2026, 12, 7, 13, 0)),
            Some(utc(2026, 12, 7, 13, 30))
        );
        // All day every day runs on across midnight.
        let always = BusinessHours {
            time_zone: "UTC".into(),
            weekly: [("mon", ()), ("tue", ())]
                .into_iter()
                .map(|(d, ())| (d.to_owned(), vec!["00:00-24:00".to_owned()]))
                .collect(),
            holidays: vec![],
            closed_reply: None,
        }
        .schedule()
        .unwrap();
        assert_eq!(
            always.next_change(utc(2026, 12, 7, 10, 0)),
            Some(utc(2026, 12, 9, 0, 0))
        );
    }

    #[test]
    fn clocks_count_only_open_time() {
        let s = lisbon();
        // Wednesday 17:00 to Thursday 10:00: one hour on each side.
        assert_eq!(
            s.open_ms_between(utc(2026, 12, 2, 17, 0), utc(2026, 12, 3, 10, 0)),
            2 * 3_600_000
        );
        // Over the weekend: nothing from Friday 18:00 to Monday 09:00.
        assert_eq!(
            s.open_ms_between(utc(2026, 12, 4, 18, 0), utc(2026, 12, 7, 9, 0)),
            0
        );
        assert_eq!(s.open_ms_between(10, 5), 0);
    }

    #[test]
    fn bad_schedules_say_why() {
        let bad = |f: &dyn Fn(&mut BusinessHours)| {
            let mut h = BusinessHours {
                time_zone: "Europe/Lisbon".into(),
                weekly: [("mon".to_owned(), vec!["09:00-18:00".to_owned()])].into(),
                holidays: vec![],
                closed_reply: None,
            };
            f(&mut h);
            h.schedule().unwrap_err()
        };
        assert!(bad(&|h| h.time_zone = "Mars/Olympus".into()).contains("time zone"));
        assert!(
            bad(&|h| h.weekly = [("monday".into(), vec!["09:00-18:00".into()])].into())
                .contains("day")
        );
        assert!(
            bad(&|h| h.weekly = [("mon".into(), vec!["18:00-09:00".into()])].into())
                .contains("start before end")
        );
        assert!(bad(&|h| h.weekly = [("mon".into(), vec!["9-5".into()])].into()).contains("HH:MM"));
        assert!(
            bad(&|h| h.weekly = [(
                "mon".into(),
                vec!["09:00-12:00".into(), "11:00-13:00".into()]
            )]
            .into())
            .contains("overlap")
        );
        assert!(bad(&|h| h.weekly = BTreeMap::new()).contains("no day"));
        assert!(bad(&|h| h.holidays = vec!["25/12/2026".into()]).contains("YYYY-MM-DD"));
        assert!(bad(&|h| h.closed_reply = Some(" ".into())).contains("closed_reply"));
        // A whole day is 00:00-24:00.
        let mut h = BusinessHours {
            time_zone: "UTC".into(),
            weekly: [("sun".to_owned(), vec!["00:00-24:00".to_owned()])].into(),
            holidays: vec![],
            closed_reply: None,
        };
        assert!(h.schedule().unwrap().is_open(utc(2026, 12, 6, 23, 59)));
        h.closed_reply = Some("Back {back_at}".into());
        assert_eq!(
            h.schedule().unwrap().closed_reply(utc(2026, 12, 7, 1, 0)).0,
            "Back Sunday 00:00"
        );
    }
}
