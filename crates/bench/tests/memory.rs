//! The router's memory must not grow with the number of messages it routes: the same load run
//! again against one router process leaves its resident memory where the first run left it.
//!
//! Found this way: the metrics recorder kept one sample per routed message until `/metrics` was
//! scraped, about 33 octets per call. The load generator is `junction-bench`; the router is the
//! real binary (see `smoke.rs` for how it is found). No timing thresholds, only memory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

fn router_bin() -> PathBuf {
    std::env::var_os("JUNCTION_BIN").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_BIN_EXE_junction-bench")).with_file_name("junction")
    })
}

/// A `junction serve` on a free loopback port, killed when dropped.
struct Router {
    child: Child,
    addr: String,
    /// Kept open: the router may write more, and must not meet a closed pipe.
    _stdout: BufReader<ChildStdout>,
    _data: tempfile::TempDir,
}

impl Router {
    fn start() -> Self {
        let data = tempfile::tempdir().expect("a temporary data directory");
        let mut child = Command::new(router_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the router starts: run `cargo build -p junction` first");
        let mut stdout = BufReader::new(child.stdout.take().expect("the router's stdout"));
        let line = (&mut stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("listening on ws://"))
            .expect("the router says where it listens");
        // "junction: listening on ws://127.0.0.1:PORT/ws (WebSocket), …"
        let addr = line
            .split("ws://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("an address in the listening line")
            .to_owned();
        Self { child, addr, _stdout: stdout, _data: data }
    }

    /// Resident memory in KiB (VmRSS).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the router's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS in /proc status")
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn calls(router: &Router, count: u64) {
    let output = Command::new(env!("CARGO_BIN_EXE_junction-bench"))
        .args(["rpc-throughput", "--router", &router.addr, "--threads", "1"])
        .args(["--transport", "rawsocket", "--serializer", "msgpack", "--count"])
        .arg(count.to_string())
        .output()
        .expect("junction-bench runs");
    assert!(
        output.status.success(),
        "junction-bench failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn repeating_the_same_calls_does_not_grow_the_routers_memory() {
    const CALLS: u64 = 50_000;
    let router = Router::start();
    let mut rss = Vec::new();
    for _ in 0..3 {
        calls(&router, CALLS);
        // Past the router's once-a-second housekeeping (the metrics' histograms). A plain test
        // thread: no runtime to block.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(1500));
        rss.push(router.rss_kib());
    }
    // The leak this guards against grew about 1,600 KiB per run of 50,000 calls.
    let growth = rss[2].saturating_sub(rss[0]);
    assert!(growth < 1024, "resident memory after each run of {CALLS} calls (KiB): {rss:?}");
    println!("resident memory after each run of {CALLS} calls (KiB): {rss:?}");
}
