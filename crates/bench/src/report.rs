//! Results: one [`Outcome`] per system under test, printed as a table with ratios against the
//! relay and Crossbar.io (and cross-node against single node), or as JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// What one scenario measured on one system.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// `junction`, `relay`, `crossbar`, `external`, or a cluster's `… (cross-node)` and
    /// `junction (cluster, one node)`.
    pub target: String,
    /// What one operation is: `call`, `event` (one delivery to one subscriber) or `join` (one
    /// session established).
    pub op: &'static str,
    /// Operations completed in the measured window.
    pub ops: u64,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Operations per second: the scenario's headline figure.
    pub ops_per_s: f64,
    /// Round-trip times of the calls completed in the window (RPC scenarios).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Latency>,
    /// Publications sent in the window (pub/sub scenarios).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publications: Option<u64>,
    /// Calls answered with ERROR, or sessions that failed to join.
    pub errors: u64,
    /// Events never delivered (pub/sub scenarios; the router dropped them or the run ended).
    pub lost: u64,
    /// Router CPU time (user + system, whole process tree) in the window, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_cpu_s: Option<f64>,
    /// Router CPU time per operation, in microseconds: the figure least disturbed by a noisy
    /// machine after instruction counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_cpu_us_per_op: Option<f64>,
    /// CPU time of the load generator in the window, in seconds (it shares the machine).
    pub client_cpu_s: f64,
    /// Router resident memory at the end of the window, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_rss_bytes: Option<u64>,
    /// Router memory growth per open session, in bytes (`sessions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_per_session_bytes: Option<f64>,
    /// Instructions the router executed per operation in the window (`--callgrind`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions_per_op: Option<f64>,
    /// Data misses of the simulated 1 MiB last-level cache per operation (`--cache-sim`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_misses_per_op: Option<f64>,
}

/// Round-trip percentiles, in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
    /// Calls measured.
    pub samples: u64,
}

impl Latency {
    /// Summarises a histogram of microseconds.
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>) -> Self {
        Self {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            samples: h.len(),
        }
    }
}

/// The ratios a report gives, as (system, baseline), when both ran: Junction against the relay
/// and Crossbar.io, and a cluster across nodes against a standalone router and against the same
/// cluster on one node.
const RATIOS: [(&str, &str); 5] = [
    ("junction", "relay"),
    ("junction", "crossbar"),
    ("junction (cross-node)", "junction"),
    ("junction (cross-node)", "junction (cluster, one node)"),
    ("external (cross-node)", "external"),
];

/// A whole report: the scenario, its parameters, an outcome per system and the ratios.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scenario's name (`rpc-latency`, …).
    pub scenario: String,
    /// The parameters, as given on the command line.
    pub params: serde_json::Value,
    /// One outcome per system, in the order they ran.
    pub results: Vec<Outcome>,
    /// `junction/relay`, `junction/crossbar` and each cross-node figure against its single-node
    /// counterparts (see [`RATIOS`]) for the headline figure (and for p99 in RPC scenarios,
    /// memory per session in `sessions` and instructions with callgrind). With `--rounds`, each
    /// ratio's median over the rounds.
    pub ratios: serde_json::Map<String, serde_json::Value>,
    /// With `--rounds`: each round's ratios, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<serde_json::Map<String, serde_json::Value>>,
}

impl Report {
    /// Builds the report and its ratios.
    pub fn new(scenario: &str, params: serde_json::Value, results: Vec<Outcome>) -> Self {
        let mut ratios = serde_json::Map::new();
        let find = |name: &str| results.iter().find(|o| o.target == name);
        for (name, base) in RATIOS {
            let (Some(this), Some(other)) = (find(name), find(base)) else { continue };
            let mut add = |metric: &str, a: f64, b: f64| {
                if b > 0.0 {
                    ratios.insert(format!("{name}/{base} {metric}"), round(a / b).into());
                }
            };
            add(&this.op_rate_name(), this.ops_per_s, other.ops_per_s);
            if let (Some(a), Some(b)) = (&this.latency_us, &other.latency_us) {
                add("p99", a.p99 as f64, b.p99 as f64);
            }
            if let (Some(a), Some(b)) = (this.rss_per_session_bytes, other.rss_per_session_bytes) {
                add("memory per session", a, b);
            }
            if let (Some(a), Some(b)) = (this.instructions_per_op, other.instructions_per_op) {
                add("instructions per op", a, b);
            }
            if let (Some(a), Some(b)) = (this.cache_misses_per_op, other.cache_misses_per_op) {
                add("cache misses per op", a, b);
            }
        }
        Self { scenario: scenario.to_owned(), params, results, ratios, rounds: Vec::new() }
    }

    /// The reports of several rounds as one: every round's outcomes, and each ratio's median
    /// (the lower middle one for an even count of rounds), with every round's ratios kept.
    /// `None` without a report.
    pub fn combine(reports: Vec<Report>) -> Option<Self> {
        let mut reports = reports.into_iter();
        let mut combined = reports.next()?;
        let rest: Vec<Report> = reports.collect();
        if rest.is_empty() {
            return Some(combined);
        }
        let rounds: Vec<_> =
            std::iter::once(&combined).chain(&rest).map(|r| r.ratios.clone()).collect();
        let mut ratios = serde_json::Map::new();
        for name in combined.ratios.keys() {
            let mut values: Vec<f64> =
                rounds.iter().filter_map(|r| r.get(name)?.as_f64()).collect();
            values.sort_by(f64::total_cmp);
            if let Some(&median) = values.get(values.len().saturating_sub(1) / 2) {
                ratios.insert(name.clone(), median.into());
            }
        }
        combined.results.extend(rest.into_iter().flat_map(|r| r.results));
        combined.ratios = ratios;
        combined.rounds = rounds;
        Some(combined)
    }

    /// The report as an aligned text table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        let mut row = |name: &str, f: &dyn Fn(&Outcome) -> Option<String>| {
            let cells: Vec<String> =
                self.results.iter().map(|o| f(o).unwrap_or_else(|| "-".into())).collect();
            if cells.iter().any(|c| c != "-") {
                rows.push((name.to_owned(), cells));
            }
        };
        let op = self.results.first().map_or("op", |o| o.op);
        row(&format!("{op}s/s"), &|o| Some(human(o.ops_per_s)));
        row(&format!("{op}s"), &|o| Some(o.ops.to_string()));
        row("seconds", &|o| Some(format!("{:.2}", o.seconds)));
        row("p50 µs", &|o| o.latency_us.as_ref().map(|l| l.p50.to_string()));
        row("p99 µs", &|o| o.latency_us.as_ref().map(|l| l.p99.to_string()));
        row("p99.9 µs", &|o| o.latency_us.as_ref().map(|l| l.p999.to_string()));
        row("max µs", &|o| o.latency_us.as_ref().map(|l| l.max.to_string()));
        row("publications", &|o| o.publications.map(|p| p.to_string()));
        row("errors", &|o| (o.errors > 0).then(|| o.errors.to_string()));
        row("lost", &|o| (o.lost > 0).then(|| o.lost.to_string()));
        row("router CPU s", &|o| o.router_cpu_s.map(|c| format!("{c:.2}")));
        row(&format!("router CPU µs/{op}"), &|o| {
            o.router_cpu_us_per_op.map(|c| format!("{c:.2}"))
        });
        row("client CPU s", &|o| Some(format!("{:.2}", o.client_cpu_s)));
        row("router RSS MiB", &|o| {
            o.router_rss_bytes.map(|b| format!("{:.1}", b as f64 / 1048576.0))
        });
        row("RSS/session KiB", &|o| o.rss_per_session_bytes.map(|b| format!("{:.2}", b / 1024.0)));
        row(&format!("instructions/{op}"), &|o| o.instructions_per_op.map(|i| format!("{i:.0}")));
        row(&format!("cache misses/{op}"), &|o| o.cache_misses_per_op.map(|m| format!("{m:.2}")));

        let mut headers = vec![self.scenario.clone()];
        headers.extend(self.results.iter().map(|o| o.target.clone()));
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for (name, cells) in &rows {
            widths[0] = widths[0].max(name.chars().count());
            for (i, c) in cells.iter().enumerate() {
                widths[i + 1] = widths[i + 1].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: Vec<&str>| {
            for (i, c) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(c.chars().count());
                if i == 0 {
                    let _ = write!(out, "{c}{}", " ".repeat(pad));
                } else {
                    let _ = write!(out, "  {}{c}", " ".repeat(pad));
                }
            }
            out.push('\n');
        };
        line(headers.iter().map(String::as_str).collect());
        for (name, cells) in &rows {
            let mut all = vec![name.as_str()];
            all.extend(cells.iter().map(String::as_str));
            line(all);
        }
        for (name, value) in &self.ratios {
            let each: Vec<String> = self
                .rounds
                .iter()
                .map(|r| r.get(name).map_or_else(|| "-".into(), ToString::to_string))
                .collect();
            match each.as_slice() {
                [] => _ = writeln!(out, "{name}: {value}"),
                _ => _ = writeln!(out, "{name}: {value} (median of {})", each.join(", ")),
            }
        }
        out
    }
}

impl Outcome {
    /// The name of the headline figure: `calls/s`, `events/s`, `joins/s`.
    fn op_rate_name(&self) -> String {
        format!("{}s/s", self.op)
    }
}

/// A rate with a thousands separator, to read large figures at a glance.
fn human(x: f64) -> String {
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of `scenario` with the headline rate of each system.
    fn report(scenario: &str, op: &'static str, rates: &[(&str, f64)]) -> Report {
        let outcome = |&(target, rate): &(&str, f64)| Outcome {
            target: target.into(),
            op,
            ops_per_s: rate,
            ..Outcome::default()
        };
        Report::new(scenario, serde_json::json!({}), rates.iter().map(outcome).collect())
    }

    #[test]
    fn rounds_report_each_ratios_median_and_every_round() {
        let rounds = [150.0, 120.0, 160.0].map(|junction| {
            report("rpc-throughput", "call", &[("relay", 200.0), ("junction", junction)])
        });
        let combined = Report::combine(rounds.into()).unwrap();
        assert_eq!(combined.ratios["junction/relay calls/s"], 0.75);
        assert_eq!(combined.rounds.len(), 3);
        assert_eq!(combined.results.len(), 6);
        assert!(
            combined.table().contains("junction/relay calls/s: 0.75 (median of 0.75, 0.6, 0.8)")
        );
        let single = Report::combine(vec![report("rpc-throughput", "call", &[])]).unwrap();
        assert!(single.rounds.is_empty());
        assert!(Report::combine(Vec::new()).is_none());
    }

    #[test]
    fn ratios_compare_junction_with_each_baseline() {
        let report = report(
            "rpc-throughput",
            "call",
            &[("relay", 200.0), ("junction", 150.0), ("crossbar", 10.0)],
        );
        assert_eq!(report.ratios["junction/relay calls/s"], 0.75);
        assert_eq!(report.ratios["junction/crossbar calls/s"], 15.0);
        assert!(report.table().contains("junction/relay calls/s: 0.75"));
    }

    #[test]
    fn cross_node_figures_are_compared_with_single_node_ones() {
        let report = report(
            "pubsub-fanout",
            "event",
            &[
                ("junction", 100.0),
                ("junction (cluster, one node)", 80.0),
                ("junction (cross-node)", 40.0),
            ],
        );
        assert_eq!(report.ratios["junction (cross-node)/junction events/s"], 0.4);
        assert_eq!(
            report.ratios["junction (cross-node)/junction (cluster, one node) events/s"],
            0.5
        );
        assert_eq!(report.ratios.len(), 2);
    }

    #[test]
    fn large_rates_get_thousands_separators() {
        assert_eq!(human(1234567.4), "1,234,567");
        assert_eq!(human(999.0), "999");
    }
}
