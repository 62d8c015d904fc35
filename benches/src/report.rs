//! Results: a histogram of latencies, counters, the human table and the JSON line.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The result of one run; the last line of stdout is this, as JSON.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    /// Scenario name.
    pub(crate) scenario: String,
    /// Gateway nodes.
    pub(crate) nodes: usize,
    /// Client connections.
    pub(crate) conns: usize,
    /// Target rate, messages in per second.
    pub(crate) rate: u64,
    /// Measured duration, seconds.
    pub(crate) duration_s: f64,
    /// Messages sent.
    pub(crate) sent: u64,
    /// Deliveries received (unique).
    pub(crate) delivered: u64,
    /// Deliveries expected.
    pub(crate) expected: u64,
    /// Expected but never received.
    pub(crate) lost: u64,
    /// Received more than once.
    pub(crate) duplicated: u64,
    /// Latency percentiles, µs.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Maximum.
    pub(crate) max_us: u64,
    /// CPU (user + sys) of all gateway processes per delivery, µs.
    pub(crate) cpu_us_per_delivery: f64,
    /// CPU of redis-server per delivery, µs (0 without a spawned Redis).
    pub(crate) redis_cpu_us_per_delivery: f64,
    /// Gateway resident memory per connection, KiB.
    pub(crate) rss_kib_per_conn: f64,
    /// Connections established per second.
    pub(crate) connect_rate: f64,
    /// Most winners seen for one (conversation, epoch) — must be 1.
    pub(crate) winners_per_epoch_max: u64,
    /// `ramp`: the highest clean rate, messages in per second.
    pub(crate) knee_rate: u64,
    /// Whether every correctness check passed.
    pub(crate) ok: bool,
}

impl Report {
    /// Fills the percentiles from `h` (µs).
    pub(crate) fn latencies(&mut self, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        self.p50_us = h.value_at_quantile(0.50);
        self.p99_us = h.value_at_quantile(0.99);
        self.p999_us = h.value_at_quantile(0.999);
        self.max_us = h.max();
    }

    /// Prints the table, then the JSON line.
    pub(crate) fn print(&self) {
        println!();
        println!("{:<28}{}", "scenario", self.scenario);
        let rows: [(&str, String); 17] = [
            ("nodes", self.nodes.to_string()),
            ("connections", self.conns.to_string()),
            ("rate (msg/s in)", self.rate.to_string()),
            ("duration (s)", format!("{:.1}", self.duration_s)),
            ("sent", self.sent.to_string()),
            (
                "delivered / expected",
                format!("{} / {}", self.delivered, self.expected),
            ),
            ("lost", self.lost.to_string()),
            ("duplicated", self.duplicated.to_string()),
            ("latency p50 (µs)", self.p50_us.to_string()),
            ("latency p99 (µs)", self.p99_us.to_string()),
            ("latency p99.9 (µs)", self.p999_us.to_string()),
            ("latency max (µs)", self.max_us.to_string()),
            (
                "gateway CPU/delivery (µs)",
                format!("{:.2}", self.cpu_us_per_delivery),
            ),
            (
                "redis CPU/delivery (µs)",
                format!("{:.2}", self.redis_cpu_us_per_delivery),
            ),
            (
                "gateway RSS/conn (KiB)",
                format!("{:.2}", self.rss_kib_per_conn),
            ),
            ("connects/s", format!("{:.0}", self.connect_rate)),
            (
                "winners per epoch (max)",
                self.winners_per_epoch_max.to_string(),
            ),
        ];
        for (k, v) in rows {
            println!("{k:<28}{v}");
        }
        if self.knee_rate > 0 {
            println!("{:<28}{}", "knee (msg/s in)", self.knee_rate);
        }
        println!("{:<28}{}", "correct", if self.ok { "yes" } else { "NO" });
        match serde_json::to_string(self) {
            Ok(json) => println!("{json}"),
            Err(e) => println!("{{\"error\":\"{e}\"}}"),
        }
    }
}

/// A latency histogram in µs, 1 µs to 60 s.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}
