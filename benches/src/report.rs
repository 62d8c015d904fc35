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
    /// 95th percentile (`search`).
    pub(crate) p95_us: u64,
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
    /// CPU of redis-server per message in, µs (`fanout`; 0 without a spawned Redis).
    pub(crate) redis_cpu_us_per_message: f64,
    /// CPU of each Redis master per delivery, µs (a Redis Cluster shows its spread).
    pub(crate) redis_cpu_us_per_delivery_by_master: Vec<f64>,
    /// Gateway resident memory per connection, KiB.
    pub(crate) rss_kib_per_conn: f64,
    /// Connections established per second.
    pub(crate) connect_rate: f64,
    /// Most winners seen for one (conversation, epoch) — must be 1.
    pub(crate) winners_per_epoch_max: u64,
    /// `fanout` with an archive: the archive lag's 99th percentile, ms (the bound of the
    /// node histogram's bucket it falls in: from each command's step to its copy
    /// committed in PostgreSQL); 0 without an archive.
    pub(crate) archive_lag_p99_ms: f64,
    /// `fanout` with an archive: events in it at the end.
    pub(crate) archive_events: u64,
    /// `fanout` with an archive: bytes per archived event (table, TOAST and indexes).
    pub(crate) archive_bytes_per_event: f64,
    /// `fanout` with an archive: of which indexes, bytes per event.
    pub(crate) archive_index_bytes_per_event: f64,
    /// `ramp`: the highest clean rate, messages in per second.
    pub(crate) knee_rate: u64,
    /// Lines of detail a scenario adds (`script-cost`: the split per command kind).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
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
        let rows: [(&str, String); 18] = [
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
                "redis CPU/message in (µs)",
                format!("{:.2}", self.redis_cpu_us_per_message),
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
        if self.redis_cpu_us_per_delivery_by_master.len() > 1 {
            let each: Vec<String> = self
                .redis_cpu_us_per_delivery_by_master
                .iter()
                .map(|c| format!("{c:.2}"))
                .collect();
            println!("{:<28}{}", "redis CPU/deliv. by master", each.join(" / "));
        }
        if self.archive_lag_p99_ms > 0.0 {
            println!(
                "{:<28}≤ {}",
                "archive lag p99 (ms)", self.archive_lag_p99_ms
            );
        }
        if self.archive_events > 0 {
            println!(
                "{:<28}{} ({:.0} B/event, of which indexes {:.0})",
                "archive events",
                self.archive_events,
                self.archive_bytes_per_event,
                self.archive_index_bytes_per_event
            );
        }
        if self.knee_rate > 0 {
            println!("{:<28}{}", "knee (msg/s in)", self.knee_rate);
        }
        for note in &self.notes {
            println!("{note}");
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

/// Writes the latency distribution of `h` as an SVG plot: latency (ms) by percentile, the
/// percentile axis spread by "nines" (50 %, 90 %, 99 %, 99.9 %, …).
pub(crate) fn write_svg(
    h: &Histogram<u64>,
    path: &std::path::Path,
    title: &str,
) -> std::io::Result<()> {
    let (w, hgt, left, bottom, top, right) = (720.0, 420.0, 70.0, 50.0, 40.0, 20.0);
    let quantiles = [
        0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
    ];
    // x: -log10(1 - q), capped at 5 nines for q = 1.
    let x_of = |q: f64| (-(1.0 - q).max(1e-5).log10()).min(5.0);
    let points: Vec<(f64, f64)> = quantiles
        .iter()
        .map(|q| (x_of(*q), h.value_at_quantile(*q) as f64 / 1000.0))
        .collect();
    let max_ms = points.iter().map(|p| p.1).fold(0.1, f64::max) * 1.1;
    let px = |x: f64| left + x / 5.0 * (w - left - right);
    let py = |y: f64| hgt - bottom - y / max_ms * (hgt - bottom - top);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{hgt}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">{title}</text>\n",
        w / 2.0
    );
    for (x, label) in [
        (0.0, "0%"),
        (0.301, "50%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "max"),
    ] {
        svg += &format!(
            "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"#ddd\"/><text x=\"{0:.1}\" y=\"{3:.1}\" text-anchor=\"middle\">{label}</text>\n",
            px(x),
            top,
            hgt - bottom,
            hgt - bottom + 18.0
        );
    }
    for i in 0..=5 {
        let y = max_ms * i as f64 / 5.0;
        svg += &format!(
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{y:.1}</text>\n",
            py(y),
            w - right,
            left - 6.0,
            py(y) + 4.0
        );
    }
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">percentile</text>\n<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">latency (ms)</text>\n",
        (left + w - right) / 2.0,
        hgt - 10.0,
        hgt / 2.0,
        hgt / 2.0
    );
    let line: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
        .collect();
    svg += &format!(
        "<polyline fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\" points=\"{}\"/>\n",
        line.join(" ")
    );
    for (x, y) in &points {
        svg += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f6feb\"/>\n",
            px(*x),
            py(*y)
        );
    }
    svg += "</svg>\n";
    std::fs::write(path, svg)
}
