"""Test harness for the Junction interop suite.

Three things live here:

* ``RouterProcess`` starts the real ``junction`` binary on a free loopback port with its own data
  directory, waits until the port accepts connections and stops the process again.
* ``RawPeer`` speaks WAMP by hand over WebSocket or RawSocket with any of the three serializers.
  Real clients validate what they send (Autobahn rejects invalid URIs before they reach the wire),
  so tests of the router's error handling need a peer that sends exactly the frames we write.
* ``connect_autobahn`` / ``connect_xconn`` join the router with the two real Python client
  libraries, so the suite checks that independent implementations interoperate with Junction.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import cbor2
import msgpack
import txaio

txaio.use_asyncio()

# Autobahn must only be imported after txaio has been told which event loop flavour to use.
from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.component import Component  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp.serializer import (  # noqa: E402
    CBORSerializer as AutobahnCBOR,
    JsonSerializer as AutobahnJSON,
    MsgPackSerializer as AutobahnMsgPack,
)
from autobahn.wamp.types import ComponentConfig, SubscribeOptions  # noqa: E402
import websockets  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402
import xconn  # noqa: E402
from xconn.async_client import connect as xconn_connect  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]
REALM = "realm1"

# Every wait in this suite is bounded by one of these (seconds).
STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
RECV_TIMEOUT = 5.0

TRANSPORTS = ("websocket", "rawsocket")
SERIALIZERS = ("json", "msgpack", "cbor")
# Every (transport, serializer) pair, for parametrized matrices.
TRANSPORT_SERIALIZER_MATRIX = [(t, s) for t in TRANSPORTS for s in SERIALIZERS]

WS_SUBPROTOCOLS = {"json": "wamp.2.json", "msgpack": "wamp.2.msgpack", "cbor": "wamp.2.cbor"}
RAWSOCKET_SERIALIZER_IDS = {"json": 1, "msgpack": 2, "cbor": 3}

# WAMP message type codes used by the raw-frame tests.
HELLO, WELCOME, ABORT, GOODBYE, ERROR = 1, 2, 3, 6, 8
PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, UNSUBSCRIBE, UNSUBSCRIBED, EVENT = 16, 17, 32, 33, 34, 35, 36
CALL, RESULT, REGISTER, REGISTERED, UNREGISTER, UNREGISTERED, INVOCATION, YIELD = (
    48, 50, 64, 65, 66, 67, 68, 70,
)

# The roles a hand-written peer announces in HELLO.
RAW_CLIENT_ROLES = {
    "caller": {"features": {}},
    "callee": {"features": {}},
    "publisher": {"features": {}},
    "subscriber": {"features": {}},
}


def junction_binary() -> Path:
    """Where the router binary is: ``$JUNCTION_BIN`` or ``target/debug/junction`` in the repo."""
    configured = os.environ.get("JUNCTION_BIN")
    if configured:
        return Path(configured).resolve()
    return REPO_ROOT / "target" / "debug" / "junction"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RouterStartError(RuntimeError):
    pass


def realms_config(realms: list[str]) -> str:
    """A configuration file (docs/configuration.md) that opens ``realms`` to anonymous clients."""
    return "".join(f'[[realms]]\nname = {json.dumps(name)}\n\n' for name in realms)


def admin_realm_config(password: str, authmethods: list[str], permissions: list[str],
                       uri: str) -> str:
    """The admin realm ``junction.admin`` with ``root`` (``password``) in group ``operators``,
    which holds ``permissions`` on the prefix ``uri``: a configuration section (TOML)."""
    return f"""
[[realms]]
name = "junction.admin"
anonymous = false

[realms.security]
authmethods = {json.dumps(authmethods)}

[[realms.security.users]]
authid = "root"
password = "{password}"
groups = ["operators"]

[[realms.security.groups]]
name = "operators"

[[realms.security.grants]]
permissions = {json.dumps(permissions)}
uri = "{uri}"
match = "prefix"
roles = ["operators"]
"""


class RouterProcess:
    """One ``junction serve`` process on a free loopback port, with its own data directory."""

    def __init__(self, binary: Path, workdir: Path, realms: list[str] | None = None,
                 config: str | None = None):
        self.binary = binary
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "router.log"
        # Realms to open instead of the default ``realm1`` (written to a config file).
        self.realms = realms
        # A whole configuration file (TOML) to start the router with; takes precedence over
        # ``realms``.
        self.config = config
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        # Set when a test stops the router on purpose (shutdown tests), so teardown does not
        # report the exit as a crash.
        self.stopped_by_test = False

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def rs_url(self) -> str:
        return f"rs://{self.host}:{self.port}"

    def url_for(self, transport: str) -> str:
        return self.ws_url if transport == "websocket" else self.rs_url

    def start(self) -> "RouterProcess":
        if not self.binary.is_file():
            raise RouterStartError(
                f"junction binary not found at {self.binary}; build it with "
                "`cargo build -p junction --bin junction` or set JUNCTION_BIN"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config_args = []
        if self.config is not None or self.realms is not None:
            config = self.workdir / "junction.toml"
            config.write_text(self.config if self.config is not None
                              else realms_config(self.realms))
            config_args = ["--config", str(config)]
        last_error = ""
        # A port picked by free_port() can be taken by a parallel test before the router binds
        # it; in that case the router exits early and we try again on another port.
        for _attempt in range(3):
            self.port = free_port()
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(
                    [
                        str(self.binary),
                        "serve",
                        "--listen",
                        f"{self.host}:{self.port}",
                        "--data-dir",
                        str(self.data_dir),
                        *config_args,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                )
            finally:
                log.close()
            if self._wait_ready():
                return self
            last_error = self.log_tail()
            self._kill()
        raise RouterStartError(
            f"junction did not accept connections on 127.0.0.1:{self.port} within "
            f"{STARTUP_TIMEOUT}s. Log:\n{last_error}"
        )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        self.stopped_by_test = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if the process is still running after ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the router has not exited within STOP_TIMEOUT."""
        if not self.is_running():
            return
        self.proc.send_signal(signal.SIGTERM)
        if self.wait_exit(STOP_TIMEOUT) is None:
            self._kill()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)

    def log_tail(self, max_chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no router log)"
        return text[-max_chars:]


# ------------------------------------------------------------------------------------------------
# Hand-written WAMP peer
# ------------------------------------------------------------------------------------------------


class PeerClosed(Exception):
    """The router closed the transport while the peer was waiting for a message."""


def json_binary(data: bytes) -> str:
    """The WAMP JSON convention for binary values: NUL character followed by base64."""
    return "\x00" + base64.b64encode(data).decode("ascii")


def encode(serializer: str, msg: list) -> bytes | str:
    if serializer == "json":
        return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)
    if serializer == "msgpack":
        return msgpack.packb(msg, use_bin_type=True)
    if serializer == "cbor":
        return cbor2.dumps(msg)
    raise ValueError(serializer)


def decode(serializer: str, data: bytes | str) -> list:
    if serializer == "json":
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        return json.loads(data)
    if serializer == "msgpack":
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    if serializer == "cbor":
        return cbor2.loads(data)
    raise ValueError(serializer)


def assert_error(reply: list, request_type: int, request: int, error: str) -> None:
    """``reply`` must be ``[ERROR, request_type, request, Details, error, ...]``."""
    assert reply[:3] == [ERROR, request_type, request], (
        f"expected ERROR {error} for request {request}, got {reply!r}"
    )
    assert reply[4] == error, reply


def rawsocket_frame(kind: int, payload: bytes) -> bytes:
    """A RawSocket frame: 1 byte kind (0 WAMP, 1 PING, 2 PONG), 3 byte big-endian length."""
    return bytes([kind]) + len(payload).to_bytes(3, "big") + payload


def rawsocket_handshake_request(serializer_id: int, max_len_exp: int = 0xF) -> bytes:
    return bytes([0x7F, (max_len_exp << 4) | serializer_id, 0x00, 0x00])


class RawPeer:
    """A WAMP peer whose every frame is written by the test."""

    def __init__(self, transport: str, serializer: str):
        self.transport = transport
        self.serializer = serializer
        self._ws = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.pongs: asyncio.Queue[bytes] = asyncio.Queue()
        self._next_request = 0

    @classmethod
    async def open(cls, router: RouterProcess, transport: str = "websocket",
                   serializer: str = "json") -> "RawPeer":
        peer = cls(transport, serializer)
        if transport == "websocket":
            peer._ws = await ws_connect(
                router.ws_url,
                subprotocols=[WS_SUBPROTOCOLS[serializer]],
                open_timeout=RECV_TIMEOUT,
                ping_interval=None,
                max_size=None,
            )
            assert peer._ws.subprotocol == WS_SUBPROTOCOLS[serializer], (
                f"router selected WebSocket subprotocol {peer._ws.subprotocol!r}, "
                f"expected {WS_SUBPROTOCOLS[serializer]!r}"
            )
        elif transport == "rawsocket":
            peer._reader, peer._writer = await asyncio.wait_for(
                asyncio.open_connection(router.host, router.port), RECV_TIMEOUT
            )
            sid = RAWSOCKET_SERIALIZER_IDS[serializer]
            peer._writer.write(rawsocket_handshake_request(sid))
            await peer._writer.drain()
            reply = await asyncio.wait_for(peer._reader.readexactly(4), RECV_TIMEOUT)
            assert reply[0] == 0x7F and reply[1] & 0x0F == sid and reply[2:] == b"\x00\x00", (
                f"RawSocket handshake for serializer {sid} got reply {reply.hex()}"
            )
        else:
            raise ValueError(transport)
        return peer

    def next_request_id(self) -> int:
        """Session-scoped request ids start at 1 and increase by one, as the spec requires."""
        self._next_request += 1
        return self._next_request

    async def send(self, msg: list) -> None:
        await self.send_encoded(encode(self.serializer, msg))

    async def request(self, kind: int, *fields: Any) -> tuple[int, list]:
        """Sends ``[kind, <next request id>, *fields]``; returns that id and the next message."""
        request = self.next_request_id()
        await self.send([kind, request, *fields])
        return request, await self.recv()

    async def send_encoded(self, data: bytes | str) -> None:
        if self._ws is not None:
            await self._ws.send(data)
        else:
            if isinstance(data, str):
                data = data.encode("utf-8")
            self._writer.write(rawsocket_frame(0, data))
            await self._writer.drain()

    async def send_rawsocket_frame(self, kind: int, payload: bytes) -> None:
        self._writer.write(rawsocket_frame(kind, payload))
        await self._writer.drain()

    async def recv(self, timeout: float = RECV_TIMEOUT) -> list:
        """The next WAMP message from the router; PeerClosed if the transport closed first."""
        return decode(self.serializer, await asyncio.wait_for(self._recv_payload(), timeout))

    async def _recv_payload(self) -> bytes | str:
        if self._ws is not None:
            try:
                return await self._ws.recv()
            except websockets.ConnectionClosed as e:
                raise PeerClosed(f"WebSocket closed: {e}") from e
        while True:
            try:
                header = await self._reader.readexactly(4)
                payload = await self._reader.readexactly(int.from_bytes(header[1:], "big"))
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                raise PeerClosed(f"RawSocket closed: {e!r}") from e
            kind = header[0]
            if kind == 0:
                return payload
            if kind == 1:
                self._writer.write(rawsocket_frame(2, payload))
                await self._writer.drain()
            elif kind == 2:
                self.pongs.put_nowait(payload)
            else:
                raise AssertionError(f"router sent RawSocket frame with unknown kind {kind}")

    async def recv_rawsocket_frame(self, timeout: float = RECV_TIMEOUT) -> tuple[int, bytes]:
        """The next RawSocket frame of any kind, as (kind byte, payload)."""

        async def read() -> tuple[int, bytes]:
            header = await self._reader.readexactly(4)
            payload = await self._reader.readexactly(int.from_bytes(header[1:], "big"))
            return header[0], payload

        return await asyncio.wait_for(read(), timeout)

    async def hello(self, realm: str = REALM, details: dict | None = None) -> list:
        await self.send([HELLO, realm, details if details is not None else {"roles": RAW_CLIENT_ROLES}])
        return await self.recv()

    async def join(self, realm: str = REALM) -> int:
        """HELLO and expect WELCOME; returns the session id."""
        reply = await self.hello(realm)
        assert reply[0] == WELCOME, f"expected WELCOME, got {reply!r}"
        return reply[1]

    async def register(self, procedure: str, options: dict | None = None) -> int:
        """REGISTER and expect REGISTERED; returns the registration id."""
        request, reply = await self.request(REGISTER, options or {}, procedure)
        assert reply[:2] == [REGISTERED, request], f"REGISTER {procedure}: {reply!r}"
        return reply[2]

    async def subscribe(self, topic: str, options: dict | None = None) -> int:
        """SUBSCRIBE and expect SUBSCRIBED; returns the subscription id."""
        request, reply = await self.request(SUBSCRIBE, options or {}, topic)
        assert reply[:2] == [SUBSCRIBED, request], f"SUBSCRIBE {topic}: {reply!r}"
        return reply[2]

    async def expect_abort(self, reason: str) -> list:
        """The router's next message must be ABORT with ``reason``, not a silent close."""
        try:
            reply = await self.recv()
        except PeerClosed as e:
            raise AssertionError(f"router closed the transport without ABORT ({e})") from None
        assert reply[0] == ABORT, f"expected ABORT, got {reply!r}"
        assert reply[2] == reason, reply
        return reply

    async def wait_closed(self, timeout: float = RECV_TIMEOUT) -> list[list]:
        """Read until the router closes the transport; returns the WAMP messages read meanwhile."""
        seen: list[list] = []

        async def drain() -> None:
            while True:
                try:
                    seen.append(decode(self.serializer, await self._recv_payload()))
                except PeerClosed:
                    return

        await asyncio.wait_for(drain(), timeout)
        return seen

    def abort(self) -> None:
        """Drop the TCP connection at once: no GOODBYE, no WebSocket close handshake."""
        transport = self._ws.transport if self._ws is not None else self._writer.transport
        transport.abort()

    async def close(self) -> None:
        try:
            if self._ws is not None:
                await asyncio.wait_for(self._ws.close(), 2)
            elif self._writer is not None:
                self._writer.close()
                try:
                    await asyncio.wait_for(self._writer.wait_closed(), 2)
                except (ConnectionError, asyncio.TimeoutError):
                    pass
        except (asyncio.TimeoutError, websockets.WebSocketException, OSError):
            pass


# ------------------------------------------------------------------------------------------------
# Autobahn|Python
# ------------------------------------------------------------------------------------------------


class JoinFailed(Exception):
    """The router refused the session (ABORT) or the transport closed before WELCOME."""

    def __init__(self, reason: str | None, message: str | None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def autobahn_serializer(name: str):
    return {"json": AutobahnJSON, "msgpack": AutobahnMsgPack, "cbor": AutobahnCBOR}[name]()


class AutobahnTestSession(ApplicationSession):
    """An Autobahn session that exposes join, leave and disconnect as awaitable futures."""

    def __init__(self, config: ComponentConfig):
        super().__init__(config)
        loop = asyncio.get_running_loop()
        self.joined: asyncio.Future = loop.create_future()
        self.left: asyncio.Future = loop.create_future()
        self.disconnected: asyncio.Future = loop.create_future()
        self.transport_name = ""
        self.serializer_name = ""

    def onJoin(self, details):
        if not self.joined.done():
            self.joined.set_result(details)

    def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_exception(JoinFailed(details.reason, details.message))
        if not self.left.done():
            self.left.set_result(details)
        self.disconnect()

    def onDisconnect(self):
        if not self.joined.done():
            self.joined.set_exception(JoinFailed(None, "transport closed before WELCOME"))
        if not self.disconnected.done():
            self.disconnected.set_result(None)
        super().onDisconnect()

    def drop_transport(self) -> None:
        """Close the TCP connection without a WAMP GOODBYE."""
        self._transport.transport.abort()

    async def close(self) -> None:
        if self.is_attached() and not self.left.done():
            try:
                self.leave()
                await asyncio.wait_for(asyncio.shield(self.left), STOP_TIMEOUT)
            except Exception:
                pass
        if not self.disconnected.done():
            try:
                self.disconnect()
                await asyncio.wait_for(asyncio.shield(self.disconnected), STOP_TIMEOUT)
            except Exception:
                pass


async def connect_autobahn(router: RouterProcess, transport: str = "websocket",
                           serializer: str = "json", realm: str = REALM) -> AutobahnTestSession:
    """Open an Autobahn|Python session and wait until it has joined ``realm``."""
    loop = asyncio.get_running_loop()
    session = AutobahnTestSession(ComponentConfig(realm=realm))
    session.transport_name, session.serializer_name = transport, serializer

    def session_factory():
        return session

    if transport == "websocket":
        factory = WampWebSocketClientFactory(
            session_factory, url=router.ws_url, serializers=[autobahn_serializer(serializer)]
        )
    elif transport == "rawsocket":
        factory = WampRawSocketClientFactory(
            session_factory, serializer=autobahn_serializer(serializer)
        )
    else:
        raise ValueError(transport)
    _, protocol = await asyncio.wait_for(
        loop.create_connection(factory, router.host, router.port), RECV_TIMEOUT
    )
    # If the transport handshake fails, Autobahn never creates the session, so also watch the
    # protocol's own "closed" future to fail fast with a clear message.
    closed = asyncio.ensure_future(protocol.is_closed)
    done, _ = await asyncio.wait({session.joined, closed}, timeout=RECV_TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    if session.joined in done:
        session.joined.result()  # raises JoinFailed on ABORT
        return session
    if closed in done:
        raise JoinFailed(None, f"{transport}/{serializer} transport closed before WELCOME "
                               "(transport handshake refused?)")
    raise JoinFailed(None, f"no WELCOME within {RECV_TIMEOUT}s over {transport}/{serializer}")


# ------------------------------------------------------------------------------------------------
# xconn
# ------------------------------------------------------------------------------------------------


def xconn_serializer(name: str):
    return {
        "json": xconn.JSONSerializer,
        "msgpack": xconn.MsgPackSerializer,
        "cbor": xconn.CBORSerializer,
    }[name]()


async def connect_xconn(router: RouterProcess, transport: str = "websocket",
                        serializer: str = "json", realm: str = REALM):
    """Open an xconn session on ``realm``."""
    return await asyncio.wait_for(
        xconn_connect(
            router.url_for(transport),
            realm,
            xconn.AnonymousAuthenticator(""),
            xconn_serializer(serializer),
        ),
        RECV_TIMEOUT,
    )


async def close_xconn(session) -> None:
    try:
        await asyncio.wait_for(session.leave(), STOP_TIMEOUT + 1)
    except Exception:
        pass


class Collector:
    """Collects callback values and lets a test await the n-th one with a timeout."""

    def __init__(self):
        self.items = []
        self._waiters = []

    def add(self, item: Any) -> None:
        self.items.append(item)
        for done, fut in list(self._waiters):
            if not fut.done() and done(self.items):
                fut.set_result(None)

    async def wait_for(self, count: int = 1, timeout: float = RECV_TIMEOUT) -> list:
        """The items, once there are at least ``count``."""
        return await self.wait_until(lambda items: len(items) >= count,
                                     f"{count} item(s)", timeout)

    async def wait_until(self, done, what: str, timeout: float = RECV_TIMEOUT) -> list:
        """The items, once ``done(items)`` holds; ``what`` names the wait in the failure."""
        if not done(self.items):
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append((done, fut))
            try:
                await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"waited {timeout}s for {what}, got {len(self.items)}: {self.items!r}"
                ) from None
        return self.items


async def subscribe_collector(session, topic: str, **options) -> tuple[Collector, object]:
    """Subscribe an Autobahn session; events are collected as (args, kwargs, details)."""
    events = Collector()

    def on_event(*args, details=None, **kwargs):
        events.add((args, kwargs, details))

    subscription = await asyncio.wait_for(
        session.subscribe(on_event, topic, options=SubscribeOptions(details=True, **options)),
        RECV_TIMEOUT,
    )
    return events, subscription


# ------------------------------------------------------------------------------------------------
# Autobahn|Python sessions that authenticate, over plain or TLS connections
# ------------------------------------------------------------------------------------------------


def ticket_answer(secret: str):
    """An onChallenge answer for ticket: the secret itself."""
    return lambda challenge: secret


def wampcra_answer(secret: str):
    """An onChallenge answer for salted WAMP-CRA, with Autobahn's own helpers."""
    from autobahn.wamp.auth import compute_wcs, derive_key

    def respond(challenge):
        extra = challenge.extra
        key = derive_key(secret, extra["salt"], extra["iterations"], extra["keylen"])
        return compute_wcs(key, extra["challenge"])

    return respond


def wampcra_unsalted_answer(secret: str):
    """An onChallenge answer for unsalted WAMP-CRA: ``compute_wcs`` keyed with the secret itself.
    Fails the join if the challenge carries a salt (or anything but ``challenge``)."""
    from autobahn.wamp.auth import compute_wcs

    def respond(challenge):
        assert set(challenge.extra) == {"challenge"}, challenge.extra
        return compute_wcs(secret, challenge.extra["challenge"])

    return respond


def scram(authid: str, password: str):
    """Autobahn's WAMP-SCRAM client (``AuthScram``) for ``authid``, and an onChallenge answer
    computed by it. Its ``authextra`` (the client nonce) goes into HELLO; its ``on_welcome``
    checks the router's server signature."""
    from autobahn.wamp.auth import AuthScram

    authenticator = AuthScram(authid=authid, password=password)

    def respond(challenge):
        assert challenge.method == "scram", challenge
        proof = authenticator.on_challenge(None, challenge)
        return proof.decode("ascii") if isinstance(proof, bytes) else proof

    return authenticator, respond


def cryptosign_answer(key):
    """An onChallenge answer for Cryptosign with an ``autobahn.wamp.cryptosign.CryptosignKey``."""
    return lambda challenge: key.sign_challenge(challenge)


class AuthenticatingSession(AutobahnTestSession):
    """An Autobahn session that joins with ``join`` (authmethods, authid, authextra) and answers
    CHALLENGE with ``respond``."""

    def __init__(self, config: ComponentConfig, join: dict, respond):
        super().__init__(config)
        self._join = join
        self._respond = respond

    def onConnect(self):
        self.join(self.config.realm, **self._join)

    def onChallenge(self, challenge):
        if self._respond is None:
            raise RuntimeError(f"unexpected CHALLENGE {challenge.method}")
        return self._respond(challenge)


async def join_autobahn_auth(router: RouterProcess, realm: str, authmethods: list[str] | None,
                             authid: str | None, respond=None, *, authextra: dict | None = None,
                             transport: str = "websocket", serializer: str = "json",
                             port: int | None = None, ssl=None) -> AuthenticatingSession:
    """Join ``realm`` with Autobahn|Python, authenticating; JoinFailed(reason, message) on ABORT.
    ``port`` and ``ssl`` (an ``ssl.SSLContext``) select another listener, such as a TLS one."""
    loop = asyncio.get_running_loop()
    port = port if port is not None else router.port
    join = {"authmethods": authmethods, "authid": authid, "authextra": authextra}
    session = AuthenticatingSession(ComponentConfig(realm=realm), join, respond)
    if transport == "websocket":
        scheme = "wss" if ssl is not None else "ws"
        factory = WampWebSocketClientFactory(
            lambda: session, url=f"{scheme}://{router.host}:{port}/ws",
            serializers=[autobahn_serializer(serializer)],
        )
    else:
        factory = WampRawSocketClientFactory(lambda: session,
                                             serializer=autobahn_serializer(serializer))
    _, protocol = await asyncio.wait_for(
        loop.create_connection(factory, router.host, port, ssl=ssl), RECV_TIMEOUT
    )
    closed = asyncio.ensure_future(protocol.is_closed)
    done, _ = await asyncio.wait({session.joined, closed}, timeout=RECV_TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    if session.joined in done:
        session.joined.result()  # raises JoinFailed on ABORT
        return session
    if closed in done:
        raise JoinFailed(None, f"{transport}/{serializer} transport closed before WELCOME")
    raise JoinFailed(None, f"no WELCOME within {RECV_TIMEOUT}s over {transport}/{serializer}")


async def join_with_component(transport: dict, realm: str, authentication: dict,
                              on_session=None):
    """Joins with Autobahn's ``Component`` (the way applications configure transports and
    authentication), runs ``await on_session(session, details)`` if given, leaves, and returns
    ``(details, what on_session returned)``. A refused join raises ``JoinFailed``."""
    loop = asyncio.get_running_loop()
    result = loop.create_future()
    component = Component(transports=[{**transport, "max_retries": 0}], realm=realm,
                          authentication=authentication)

    @component.on_join
    async def on_join(session, details):
        try:
            extra = await on_session(session, details) if on_session else None
            result.set_result((details, extra))
        except Exception as e:  # reported to the test below
            result.set_exception(e)
        await session.leave()

    @component.on_leave
    def on_leave(session, details):
        if not result.done():
            result.set_exception(JoinFailed(details.reason, details.message))

    done = asyncio.ensure_future(component.start(loop))
    try:
        finished, _ = await asyncio.wait({result, done}, timeout=RECV_TIMEOUT,
                                         return_when=asyncio.FIRST_COMPLETED)
        assert result in finished, f"the Component did not join: {done!r}"
        outcome = result.result()
        await asyncio.wait_for(done, RECV_TIMEOUT)
        return outcome
    finally:
        if not done.done():
            await asyncio.wait_for(component.stop(), RECV_TIMEOUT)
