#!/usr/bin/env python3
"""Soak test for Junction: mixed WAMP load for a while, watching the router's memory.

An operator tool, not part of the test suite. It starts ``junction serve`` on a free loopback
port with a throw-away data directory, runs client worker processes against it for
``--duration`` seconds, samples the router's resident memory (VmRSS from /proc/PID/status) every
``--sample-interval`` seconds, and prints a table and a JSON summary.

The load, spread over ``--clients`` sessions in ``--processes`` worker processes, over WebSocket
and RawSocket alike (JSON serializer):

* callees answer calls (an echo, and a procedure returning a blob of a requested size);
* callers call them with payloads from a few octets to 128 KiB, and ask for blobs;
* publishers publish to a handful of topics, some with acknowledgement;
* subscribers receive the fan-out; a third of them stop reading for a while now and then;
* churners join and leave over and over, half with GOODBYE, half by dropping the TCP connection;
* meta callers poll the meta API (session count/list/get, registration and subscription lists).

Exit status: 0 when the router's RSS at the end of the load is at most ``--max-growth`` times
its RSS after the warm-up; 1 when it grew more; 2 when the soak could not run; 3 when the router
died during the soak.

Only the standard library and ``websockets`` are needed (the repository's .venv has both):

    .venv/bin/python scripts/soak.py --duration 600
    JUNCTION_BIN=target/debug/junction .venv/bin/python scripts/soak.py --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

try:
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("soak.py needs the 'websockets' package (use the repository's .venv/bin/python)")

REPO_ROOT = Path(__file__).resolve().parents[1]
REALM = "realm1"

HELLO, WELCOME, ABORT, GOODBYE, ERROR = 1, 2, 3, 6, 8
PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, EVENT = 16, 17, 32, 33, 36
CALL, RESULT, REGISTER, REGISTERED, INVOCATION, INTERRUPT, YIELD = 48, 50, 64, 65, 68, 69, 70

ROLES = {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}
TOPICS = [f"com.soak.news.{i}" for i in range(4)]
PAYLOAD_SIZES = [0, 16, 64, 256, 1024, 4096, 16384, 131072]
PAYLOAD_WEIGHTS = [10, 20, 20, 15, 12, 10, 8, 5]
CALL_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0


# ------------------------------------------------------------------------------------------------
# A small WAMP client (JSON over WebSocket or RawSocket)
# ------------------------------------------------------------------------------------------------


class WampError(Exception):
    def __init__(self, uri: str, detail=None):
        super().__init__(uri)
        self.uri = uri
        self.detail = detail


class SessionLost(Exception):
    """The router closed the connection, or sent ABORT/GOODBYE, while we waited."""


class Client:
    """One WAMP session. A reader task dispatches everything the router sends."""

    def __init__(self, transport: str):
        self.transport = transport
        self.ws = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.session_id = 0
        self.next_request = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.procedures: dict[int, callable] = {}
        self.registering: dict[int, callable] = {}  # request id -> handler
        self.on_event = None
        self.reading = asyncio.Event()
        self.reading.set()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.leaving = False
        self.task: asyncio.Task | None = None

    async def connect(self, host: str, port: int) -> None:
        if self.transport == "websocket":
            self.ws = await asyncio.wait_for(
                ws_connect(f"ws://{host}:{port}/ws", subprotocols=["wamp.2.json"],
                           max_size=None, open_timeout=CONNECT_TIMEOUT), CONNECT_TIMEOUT)
        else:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT)
            self.writer.write(bytes([0x7F, 0xF1, 0, 0]))  # JSON, up to 16 MiB
            await self.writer.drain()
            reply = await asyncio.wait_for(self.reader.readexactly(4), CONNECT_TIMEOUT)
            if reply[0] != 0x7F or reply[1] & 0x0F != 1:
                raise SessionLost(f"RawSocket handshake refused: {reply.hex()}")

    async def send(self, msg: list) -> None:
        data = json.dumps(msg, separators=(",", ":"))
        if self.ws is not None:
            await self.ws.send(data)
        else:
            body = data.encode()
            self.writer.write(len(body).to_bytes(4, "big") + body)  # frame type 0: message
            await self.writer.drain()

    async def _recv(self) -> list:
        if self.ws is not None:
            return json.loads(await self.ws.recv())
        while True:
            header = await self.reader.readexactly(4)
            body = await self.reader.readexactly(int.from_bytes(header[1:], "big"))
            kind = header[0] & 0x07
            if kind == 0:
                return json.loads(body)
            if kind == 1:  # PING: answer with PONG
                self.writer.write(bytes([2]) + header[1:] + body)
                await self.writer.drain()

    async def join(self, host: str, port: int) -> None:
        await self.connect(host, port)
        await self.send([HELLO, REALM, {"roles": ROLES, "agent": "junction-soak"}])
        reply = await asyncio.wait_for(self._recv(), CONNECT_TIMEOUT)
        if reply[0] != WELCOME:
            raise SessionLost(f"HELLO answered with {reply!r:.200}")
        self.session_id = reply[1]
        self.task = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                await self.reading.wait()
                msg = await self._recv()
                kind = msg[0]
                if kind == REGISTERED and msg[1] in self.registering:
                    # Before anything else is read: an INVOCATION may follow right away.
                    self.procedures[msg[2]] = self.registering.pop(msg[1])
                if kind in (RESULT, PUBLISHED, SUBSCRIBED, REGISTERED):
                    self._resolve(msg[1], msg)
                elif kind == ERROR:
                    fut = self.pending.get(msg[2])
                    if fut is not None and not fut.done():
                        fut.set_exception(WampError(msg[4], msg[5:]))
                elif kind == EVENT:
                    if self.on_event is not None:
                        self.on_event(msg)
                elif kind == INVOCATION:
                    handler = self.procedures.get(msg[2])
                    args = msg[4] if len(msg) > 4 else []
                    reply = handler(args) if handler else None
                    await self.send([YIELD, msg[1], {}, reply if reply is not None else []])
                elif kind in (ABORT, GOODBYE):
                    if kind == GOODBYE and not self.leaving:  # the router closes: reply
                        await self.send([GOODBYE, {}, "wamp.close.goodbye_and_out"])
                    self.close_reason = f"{'ABORT' if kind == ABORT else 'GOODBYE'} {msg[2]}"
                    break
        except (ConnectionClosed, asyncio.IncompleteReadError, ConnectionError, OSError) as e:
            self.close_reason = self.close_reason or f"connection closed ({type(e).__name__})"
        except asyncio.CancelledError:
            self.close_reason = self.close_reason or "closed by us"
            raise
        finally:
            self.closed.set()
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(SessionLost(self.close_reason or "session closed"))

    def _resolve(self, request: int, msg: list) -> None:
        fut = self.pending.get(request)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def request(self, kind: int, *fields, timeout: float = CALL_TIMEOUT) -> list:
        if self.closed.is_set():
            raise SessionLost(self.close_reason)
        self.next_request += 1
        request = self.next_request
        fut = asyncio.get_running_loop().create_future()
        self.pending[request] = fut
        try:
            await self.send([kind, request, *fields])
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.pending.pop(request, None)

    async def call(self, procedure: str, args: list, timeout: float = CALL_TIMEOUT) -> list:
        reply = await self.request(CALL, {}, procedure, args, timeout=timeout)
        return reply[3] if len(reply) > 3 else []

    async def register(self, procedure: str, handler) -> None:
        self.registering[self.next_request + 1] = handler
        await self.request(REGISTER, {}, procedure)

    async def subscribe(self, topic: str) -> None:
        await self.request(SUBSCRIBE, {}, topic)

    async def publish(self, topic: str, args: list, acknowledge: bool) -> None:
        if acknowledge:
            await self.request(PUBLISH, {"acknowledge": True}, topic, args)
        else:
            self.next_request += 1
            await self.send([PUBLISH, self.next_request, {}, topic, args])

    async def leave(self) -> None:
        """GOODBYE, then close the transport."""
        with _quiet():
            if not self.closed.is_set():
                self.leaving = True
                await self.send([GOODBYE, {}, "wamp.close.close_realm"])
                await asyncio.wait_for(self.closed.wait(), 3)
        await self.close()

    def drop(self) -> None:
        """Drops the TCP connection at once: no GOODBYE, no WebSocket closing handshake."""
        transport = self.ws.transport if self.ws is not None else self.writer.transport
        transport.abort()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with _quiet():
                await self.task
        with _quiet():
            if self.ws is not None:
                await asyncio.wait_for(self.ws.close(), 3)
            elif self.writer is not None:
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 3)


class _quiet:
    """Suppresses the errors of tearing down a connection that may already be gone."""

    def __enter__(self):
        return self

    async def __aenter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, (Exception, asyncio.CancelledError))

    async def __aexit__(self, kind, value, tb):
        return self.__exit__(kind, value, tb)


# ------------------------------------------------------------------------------------------------
# Load: one worker process runs many client tasks
# ------------------------------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.counts = collections.Counter()
        self.errors = collections.Counter()
        self.latencies: list[float] = []

    def error(self, what: str) -> None:
        self.errors[what] += 1

    def snapshot(self) -> dict:
        lat = sorted(self.latencies)
        pick = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2)) if lat \
            else (lambda q: None)
        return {"counts": dict(self.counts), "errors": dict(self.errors),
                "call_latency_ms": {"p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)}}


def _describe(value) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return f"[a {len(value[0])}-character string starting {value[0][:8]!r}]"
    return repr(value)[:80]


def payload(rng: random.Random) -> str:
    return "x" * rng.choices(PAYLOAD_SIZES, PAYLOAD_WEIGHTS)[0]


class Worker:
    def __init__(self, index: int, host: str, port: int, deadline: float, roles: list[str],
                 seed: int):
        self.index = index
        self.host, self.port = host, port
        self.deadline = deadline
        self.roles = roles
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.callees_ready = asyncio.Event()
        self.callee_count = roles.count("callee")

    def running(self) -> bool:
        return time.time() < self.deadline

    async def nap(self, seconds: float) -> None:
        """Sleeps, but not past the end of the soak."""
        await asyncio.sleep(max(0.0, min(seconds, self.deadline - time.time())))

    def transport(self, slot: int) -> str:
        return ("websocket", "rawsocket")[slot % 2]

    async def session(self, slot: int) -> Client:
        client = Client(self.transport(slot))
        await client.join(self.host, self.port)
        self.stats.counts["sessions_opened"] += 1
        return client

    async def keep_running(self, role: str, slot: int, body) -> None:
        """Runs ``body(client)`` on a session, reconnecting whenever it fails, until the end."""
        while self.running():
            client = None
            try:
                client = await self.session(slot)
                await body(client)
            except WampError as e:
                self.stats.error(f"{role}: ERROR {e.uri}")
            except SessionLost as e:
                self.stats.error(f"{role}: session lost: {str(e)[:80]}")
            except asyncio.TimeoutError:
                self.stats.error(f"{role}: timeout")
            except (ConnectionClosed, ConnectionError, OSError, asyncio.IncompleteReadError) as e:
                self.stats.error(f"{role}: connection error {type(e).__name__}")
            finally:
                if client is not None:
                    await client.leave()
            if self.running():
                await asyncio.sleep(0.2)

    async def wait_for_callees(self) -> None:
        try:
            await asyncio.wait_for(self.callees_ready.wait(), 15)
        except asyncio.TimeoutError:
            self.stats.error("callees not registered within 15s")

    # -- roles ---------------------------------------------------------------------------------

    async def callee(self, slot: int) -> None:
        async def body(client: Client) -> None:
            await client.register(f"com.soak.echo.{self.index}.{slot}", lambda args: args)
            await client.register(f"com.soak.blob.{self.index}.{slot}",
                                  lambda args: ["b" * int(args[0])] if args else [])
            self.stats.counts["callees_registered"] += 1
            if self.stats.counts["callees_registered"] >= self.callee_count:
                self.callees_ready.set()
            # Callees stay a little past the end, so that the last calls still find them.
            while time.time() < self.deadline + 3 and not client.closed.is_set():
                await asyncio.sleep(0.5)
            if client.closed.is_set() and self.running():
                raise SessionLost(client.close_reason)
        await self.keep_running("callee", slot, body)

    async def caller(self, slot: int, callees: list[int]) -> None:
        await self.wait_for_callees()

        async def body(client: Client) -> None:
            while self.running():
                target = self.rng.choice(callees)
                started = time.monotonic()
                if self.rng.random() < 0.8:
                    data = payload(self.rng)
                    result = await client.call(f"com.soak.echo.{self.index}.{target}", [data])
                    if result != [data]:
                        self.stats.error(f"caller: echo of {len(data)} octets returned "
                                         f"{_describe(result)}")
                    self.stats.counts["call_bytes"] += len(data)
                else:
                    size = self.rng.choices(PAYLOAD_SIZES, PAYLOAD_WEIGHTS)[0]
                    result = await client.call(f"com.soak.blob.{self.index}.{target}", [size])
                    if result != ["b" * size]:
                        self.stats.error(f"caller: blob of {size} octets returned "
                                         f"{_describe(result)}")
                    self.stats.counts["call_bytes"] += size
                self.stats.latencies.append(time.monotonic() - started)
                if len(self.stats.latencies) > 20000:
                    del self.stats.latencies[:10000]
                self.stats.counts["calls"] += 1
                await asyncio.sleep(self.rng.uniform(0, 0.02))
        await self.keep_running("caller", slot, body)

    async def publisher(self, slot: int) -> None:
        async def body(client: Client) -> None:
            while self.running():
                for _ in range(self.rng.randint(1, 20)):
                    acknowledge = self.rng.random() < 0.2
                    await client.publish(self.rng.choice(TOPICS), [payload(self.rng)],
                                         acknowledge)
                    self.stats.counts["published"] += 1
                await asyncio.sleep(self.rng.uniform(0.05, 0.2))
        await self.keep_running("publisher", slot, body)

    async def subscriber(self, slot: int, slow: bool) -> None:
        def on_event(msg: list) -> None:
            self.stats.counts["events"] += 1

        async def body(client: Client) -> None:
            client.on_event = on_event
            for topic in self.rng.sample(TOPICS, self.rng.randint(2, len(TOPICS))):
                await client.subscribe(topic)
            while self.running() and not client.closed.is_set():
                if slow:
                    # Read for a while, then stop reading (the router's queue for us fills up).
                    await self.nap(self.rng.uniform(5, 15))
                    client.reading.clear()
                    self.stats.counts["slow_pauses"] += 1
                    await self.nap(self.rng.uniform(5, 20))
                    client.reading.set()
                else:
                    await asyncio.sleep(0.5)
            if client.closed.is_set() and self.running():
                self.stats.counts["subscriber_sessions_closed_by_router"] += 1
                raise SessionLost(client.close_reason)
        await self.keep_running("slow subscriber" if slow else "subscriber", slot, body)

    async def churner(self, slot: int, callees: list[int]) -> None:
        await self.wait_for_callees()
        while self.running():
            client = None
            try:
                client = await self.session(slot)
                if self.rng.random() < 0.5:
                    await client.subscribe(self.rng.choice(TOPICS))
                if self.rng.random() < 0.3:
                    await client.register(f"com.soak.churn.{self.index}.{slot}", lambda a: a)
                if callees and self.rng.random() < 0.5:
                    await client.call(f"com.soak.echo.{self.index}.{self.rng.choice(callees)}",
                                      ["churn"])
                if self.rng.random() < 0.5:
                    await client.leave()
                    self.stats.counts["churn_goodbye"] += 1
                else:
                    client.drop()
                    await client.close()
                    self.stats.counts["churn_dropped"] += 1
                client = None
            except WampError as e:
                self.stats.error(f"churner: ERROR {e.uri}")
            except (SessionLost, asyncio.TimeoutError, ConnectionClosed, ConnectionError,
                    OSError, asyncio.IncompleteReadError) as e:
                self.stats.error(f"churner: {type(e).__name__}")
            finally:
                if client is not None:
                    await client.close()
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))

    async def meta(self, slot: int) -> None:
        async def body(client: Client) -> None:
            while self.running():
                procedure, args = self.rng.choice([
                    ("wamp.session.count", []),
                    ("wamp.session.list", []),
                    ("wamp.session.get", [client.session_id]),
                    ("wamp.registration.list", []),
                    ("wamp.subscription.list", []),
                    ("wamp.registration.lookup", [f"com.soak.echo.{self.index}.0"]),
                    ("wamp.subscription.lookup", [TOPICS[0]]),
                ])
                await client.call(procedure, args)
                self.stats.counts["meta_calls"] += 1
                await self.nap(self.rng.uniform(0.2, 1.0))
        await self.keep_running("meta", slot, body)

    # -- the whole worker ----------------------------------------------------------------------

    async def run(self, progress, interval: float) -> dict:
        callees = [slot for slot, role in enumerate(self.roles) if role == "callee"]
        tasks = []
        for slot, role in enumerate(self.roles):
            if role == "callee":
                tasks.append(self.callee(slot))
            elif role == "caller":
                tasks.append(self.caller(slot, callees))
            elif role == "publisher":
                tasks.append(self.publisher(slot))
            elif role in ("subscriber", "slow-subscriber"):
                tasks.append(self.subscriber(slot, slow=role == "slow-subscriber"))
            elif role == "churner":
                tasks.append(self.churner(slot, callees))
            elif role == "meta":
                tasks.append(self.meta(slot))

        async def report() -> None:
            while self.running():
                await asyncio.sleep(interval)
                progress.put(("progress", self.index, self.stats.snapshot()))

        if not callees:
            self.callees_ready.set()
        first = [asyncio.create_task(t) for t in tasks[:len(callees)]]
        rest = [asyncio.create_task(t) for t in tasks[len(callees):]]
        reporter = asyncio.create_task(report())
        results = await asyncio.gather(*first, *rest, return_exceptions=True)
        reporter.cancel()
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                self.stats.error(f"task crashed: {type(r).__name__}: {str(r)[:80]}")
        return self.stats.snapshot()


def worker_main(index: int, host: str, port: int, deadline: float, roles: list[str],
                seed: int, progress, interval: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    worker = Worker(index, host, port, deadline, roles, seed)
    try:
        snapshot = asyncio.run(worker.run(progress, interval))
    except Exception as e:  # report instead of dying silently
        worker.stats.error(f"worker crashed: {type(e).__name__}: {e}")
        snapshot = worker.stats.snapshot()
    progress.put(("final", index, snapshot))


def assign_roles(clients: int, slow_subscribers: bool = True) -> list[str]:
    """Splits ``clients`` sessions into roles; every role gets at least one."""
    weights = [("callee", 0.10), ("caller", 0.30), ("publisher", 0.12), ("subscriber", 0.14),
               ("slow-subscriber", 0.07), ("churner", 0.20), ("meta", 0.07)]
    if not slow_subscribers:
        weights = [(n, w) if n != "subscriber" else (n, 0.21)
                   for n, w in weights if n != "slow-subscriber"]
    roles = [name for name, _ in weights]
    remaining = max(clients - len(roles), 0)
    for name, weight in weights:
        roles += [name] * int(round(weight * remaining))
    roles = roles[:max(clients, len(weights))]
    return roles


# ------------------------------------------------------------------------------------------------
# The router
# ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(explicit: str | None) -> tuple[Path, str | None]:
    """The router binary, and a warning when it is not a release build."""
    if explicit:
        return Path(explicit).resolve(), None
    if os.environ.get("JUNCTION_BIN"):
        return Path(os.environ["JUNCTION_BIN"]).resolve(), None
    release = REPO_ROOT / "target" / "release" / "junction"
    if release.is_file():
        return release, None
    debug = REPO_ROOT / "target" / "debug" / "junction"
    return debug, (f"{release} does not exist; using the debug build {debug} (slower and larger:"
                   f" figures are not representative; build with "
                   f"`cargo build --release -p junction --bin junction`)")


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def scrape_metrics(port: int) -> dict:
    """Counter and gauge totals from the router's /metrics (Prometheus text format)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict = collections.defaultdict(float)
    by_type: dict = collections.defaultdict(float)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            v = float(value)
        except ValueError:
            continue
        if name.endswith(("_bucket", "_sum", "_count")):
            continue
        out[name] += v
        if name == "junction_messages_sent_total" and 'type="' in name_labels:
            by_type[name_labels.split('type="', 1)[1].split('"', 1)[0]] += v
    out["sent_by_type"] = dict(by_type)
    return dict(out)


def start_router(binary: Path, workdir: Path, config: str | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = open(workdir / "router.log", "ab")
    args = [str(binary), "serve", "--listen", f"127.0.0.1:{port}",
            "--data-dir", str(workdir / "data")]
    if not config:
        # Quiet logs: a soak opens thousands of sessions. (Not via JUNCTION_LOG: the router
        # reads JUNCTION_* variables as configuration keys.)
        config = str(workdir / "junction.toml")
        Path(config).write_text('[log]\nlevel = "warn"\n')
    args += ["--config", config]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            cwd=workdir)
    log.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"junction exited with code {proc.returncode}; see "
                               f"{workdir / 'router.log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"junction did not accept connections on port {port} within 15s")


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def merge(snapshots: dict[int, dict]) -> dict:
    counts, errors = collections.Counter(), collections.Counter()
    p50, p99, worst = [], [], []
    for snap in snapshots.values():
        counts.update(snap["counts"])
        errors.update(snap["errors"])
        lat = snap.get("call_latency_ms", {})
        if lat.get("p50") is not None:
            p50.append(lat["p50"])
            p99.append(lat["p99"])
            worst.append(lat["max"])
    return {"counts": dict(counts), "errors": dict(errors),
            "call_latency_ms": {"p50_of_workers": max(p50, default=None),
                                "p99_of_workers": max(p99, default=None),
                                "max": max(worst, default=None)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (600)")
    parser.add_argument("--clients", type=int, default=40,
                        help="sessions in all (40), split over the roles")
    parser.add_argument("--processes", type=int, default=2, help="client worker processes (2)")
    parser.add_argument("--sample-interval", type=float, default=10,
                        help="seconds between RSS samples (10)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds of warm-up before the reference RSS "
                             "(default: a quarter of the duration, at most 60)")
    parser.add_argument("--max-growth", type=float, default=1.5,
                        help="fail if end RSS > this factor x post-warm-up RSS (1.5)")
    parser.add_argument("--binary", help="router binary (default: $JUNCTION_BIN, else "
                                         "target/release/junction)")
    parser.add_argument("--config", help="a junction.toml to start the router with")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--max-payload", type=int, default=131072,
                        help="largest payload string in octets (131072)")
    parser.add_argument("--no-slow-subscribers", action="store_true",
                        help="every subscriber keeps reading")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and log")
    opts = parser.parse_args()

    binary, warning = find_binary(opts.binary)
    if not binary.is_file():
        print(f"soak: no router binary at {binary}", file=sys.stderr)
        return 2
    if warning:
        print(f"soak: warning: {warning}", file=sys.stderr)
    warmup = opts.warmup if opts.warmup is not None else min(60.0, opts.duration / 4)
    workdir = Path(tempfile.mkdtemp(prefix="junction-soak-"))
    try:
        proc, port = start_router(binary, workdir, opts.config)
    except RuntimeError as e:
        print(f"soak: {e}", file=sys.stderr)
        return 2

    roles = assign_roles(opts.clients, not opts.no_slow_subscribers)
    global PAYLOAD_SIZES, PAYLOAD_WEIGHTS
    keep = [i for i, n in enumerate(PAYLOAD_SIZES) if n <= opts.max_payload]
    PAYLOAD_SIZES = [PAYLOAD_SIZES[i] for i in keep] or [opts.max_payload]
    PAYLOAD_WEIGHTS = [PAYLOAD_WEIGHTS[i] for i in keep] or [1]
    per_process = [roles[i::opts.processes] for i in range(opts.processes)]
    print(f"soak: {binary} on 127.0.0.1:{port}, pid {proc.pid}; {len(roles)} sessions in "
          f"{opts.processes} processes ({dict(collections.Counter(roles))}); "
          f"{opts.duration:g}s, warm-up {warmup:g}s, sample every {opts.sample_interval:g}s",
          flush=True)

    samples = []
    start_rss = rss_kib(proc.pid)
    started = time.time()
    deadline = started + opts.duration
    ctx = multiprocessing.get_context("fork")
    progress = ctx.Queue()
    workers = [ctx.Process(target=worker_main, daemon=True,
                           args=(i, "127.0.0.1", port, deadline, per_process[i],
                                 opts.seed * 1000 + i, progress, min(opts.sample_interval, 2.0)))
               for i in range(opts.processes) if per_process[i]]
    for w in workers:
        w.start()

    latest: dict[int, dict] = {}
    finals: dict[int, dict] = {}
    header = (f"{'t(s)':>6} {'RSS MiB':>8} {'sessions':>8} {'conns':>6} {'recv msgs':>10} "
              f"{'sent msgs':>10} {'calls':>8} {'events':>9} {'errors':>7} {'dropped ev':>10}")
    print(header, flush=True)
    router_died = False
    after_warmup = None
    interrupted = False

    def drain() -> None:
        while True:
            try:
                kind, index, snap = progress.get_nowait()
            except Exception:
                return
            (finals if kind == "final" else latest)[index] = snap
            if kind == "final":
                latest[index] = snap

    def sample(label: str | None = None) -> dict:
        drain()
        # Memory first: a scrape folds what the metrics recorder holds, and would hide memory
        # that only a scrape gives back (as the histogram samples did before 85f76e3).
        memory = rss_kib(proc.pid)
        m = scrape_metrics(port)
        merged = merge(latest)
        row = {
            "t": round(time.time() - started, 1),
            "rss_kib": memory,
            "sessions": int(m.get("junction_sessions", 0)),
            "connections": int(m.get("junction_connections_open", 0)),
            "received": int(m.get("junction_messages_received_total", 0)),
            "sent": int(m.get("junction_messages_sent_total", 0)),
            "dropped_events": int(m.get("junction_events_dropped_total", 0)),
            "calls": merged["counts"].get("calls", 0),
            "events": merged["counts"].get("events", 0),
            "errors": sum(merged["errors"].values()),
        }
        if label:
            row["label"] = label
        samples.append(row)
        rss = f"{row['rss_kib'] / 1024:.1f}" if row["rss_kib"] else "-"
        print(f"{row['t']:>6} {rss:>8} {row['sessions']:>8} {row['connections']:>6} "
              f"{row['received']:>10} {row['sent']:>10} {row['calls']:>8} {row['events']:>9} "
              f"{row['errors']:>7} {row['dropped_events']:>10}"
              + (f"  {label}" if label else ""), flush=True)
        return row

    # Sample times: every interval, plus the end of the warm-up.
    times = {round(k * opts.sample_interval, 3)
             for k in range(1, int(opts.duration / opts.sample_interval) + 1)
             if k * opts.sample_interval < opts.duration}
    times.add(round(warmup, 3))
    try:
        sample("start")
        for t in sorted(times):
            while time.time() < started + t and proc.poll() is None:
                time.sleep(min(1.0, started + t - time.time()))
            if proc.poll() is not None:
                router_died = True
                break
            row = sample("after warm-up" if t == round(warmup, 3) else None)
            if t == round(warmup, 3):
                after_warmup = row
        while time.time() < deadline and proc.poll() is None:
            time.sleep(min(1.0, deadline - time.time()))
    except KeyboardInterrupt:
        interrupted = True
        print("soak: interrupted, stopping the load", flush=True)

    end_row = sample("end of load") if proc.poll() is None else None
    if after_warmup is None:
        after_warmup = end_row
    # Let the workers finish (their sessions say GOODBYE) and collect their figures.
    wait_until = time.time() + 30
    while len(finals) < len(workers) and time.time() < wait_until:
        try:
            kind, index, snap = progress.get(timeout=1)
        except Exception:
            continue
        (finals if kind == "final" else latest)[index] = snap
    for w in workers:
        w.join(timeout=5)
        if w.is_alive():
            w.terminate()
    time.sleep(2)
    settled_row = sample("clients gone") if proc.poll() is None else None
    final_metrics = scrape_metrics(port) if proc.poll() is None else {}

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    else:
        router_died = True
    exit_code_router = proc.returncode

    client = merge(finals or latest)
    rss_values = [s["rss_kib"] for s in samples if s["rss_kib"]]
    end_rss = end_row["rss_kib"] if end_row else None
    ref_rss = after_warmup["rss_kib"] if after_warmup else None
    growth = (end_rss / ref_rss) if end_rss and ref_rss else None
    ok = growth is not None and growth <= opts.max_growth and not router_died
    summary = {
        "binary": str(binary),
        "debug_build_warning": warning,
        "duration_s": round(time.time() - started, 1),
        "clients": len(roles),
        "processes": len(workers),
        "roles": dict(collections.Counter(roles)),
        "max_payload": max(PAYLOAD_SIZES),
        "rss_kib": {
            "start": start_rss,
            "peak": max(rss_values, default=None),
            "after_warmup": ref_rss,
            "end": end_rss,
            "after_clients_left": settled_row["rss_kib"] if settled_row else None,
        },
        "growth_end_vs_warmup": round(growth, 3) if growth else None,
        "max_growth": opts.max_growth,
        "messages_routed": {
            "received_by_router": int(final_metrics.get("junction_messages_received_total", 0)),
            "sent_by_router": int(final_metrics.get("junction_messages_sent_total", 0)),
            "sent_by_type": {k: int(v) for k, v in
                             final_metrics.get("sent_by_type", {}).items()},
            "events_dropped_by_router": int(final_metrics.get("junction_events_dropped_total",
                                                              0)),
        },
        "client": client["counts"],
        "call_latency_ms": client["call_latency_ms"],
        "errors_seen": client["errors"],
        "router_died": router_died,
        "router_exit_code": exit_code_router,
        "interrupted": interrupted,
        "ok": ok,
    }
    print(json.dumps(summary, indent=2, sort_keys=True))
    if router_died:
        print(f"soak: the router died; log: {workdir / 'router.log'}", file=sys.stderr)
        return 3
    if opts.keep:
        print(f"soak: work directory kept at {workdir}", file=sys.stderr)
    else:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    if not ok:
        print(f"soak: RSS grew from {ref_rss} KiB after warm-up to {end_rss} KiB at the end "
              f"(x{growth:.2f} > x{opts.max_growth})" if growth else "soak: no RSS figures",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
