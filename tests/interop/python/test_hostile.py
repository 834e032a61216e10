"""Hostile input: what the router does with frames no well-behaved client sends.

Each case runs over WebSocket and RawSocket with JSON, MessagePack and CBOR where that applies,
and checks the answer the spec prescribes (WAMP, wamp-proto.org, Basic Profile "Protocol
errors", "URIs", "IDs"; RawSocket transport; RFC 6455):

* a well-formed request the router refuses: ERROR with the matching ``wamp.error.*`` URI, and the
  session stays usable (the same session then calls and publishes successfully);
* a malformed message, or one that is not allowed in the session's state: ABORT
  ``wamp.error.protocol_violation`` with a non-empty ``Details.message``, then the transport
  closes and nothing else arrives;
* broken transport framing: the connection is closed (an ABORT before the close is tolerated).

In every test a *bystander* session joins before the hostile client connects (it registers a
procedure and subscribes to a topic, on the other transport and another serializer). At the end
the bystander must still call and publish with no error and no stall, a fresh client must still
be able to join, and the router process must still be running.

A case does not stop at its first surprise: it collects what went wrong, runs the bystander
check anyway, and fails with the router's exact answers on the wire.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import socket
import struct
import time

import cbor2
import msgpack
import pytest
import pytest_asyncio

from junction_harness import (
    ABORT,
    CALL,
    ERROR,
    EVENT,
    GOODBYE,
    HELLO,
    INVOCATION,
    PUBLISH,
    PUBLISHED,
    RAW_CLIENT_ROLES,
    RAWSOCKET_SERIALIZER_IDS,
    REALM,
    RECV_TIMEOUT,
    REGISTER,
    REGISTERED,
    RESULT,
    SUBSCRIBE,
    SUBSCRIBED,
    TRANSPORT_SERIALIZER_MATRIX,
    UNREGISTER,
    UNREGISTERED,
    UNSUBSCRIBE,
    UNSUBSCRIBED,
    WELCOME,
    WS_SUBPROTOCOLS,
    YIELD,
    PeerClosed,
    RawPeer,
    decode,
    encode,
    rawsocket_frame,
    rawsocket_handshake_request,
)

CHALLENGE, AUTHENTICATE, CANCEL, INTERRUPT = 4, 5, 49, 69
MAX_ID = 2**53
PROTOCOL_VIOLATION = "wamp.error.protocol_violation"

# A router on loopback answers in milliseconds; waiting longer only slows down failing cases.
REPLY_TIMEOUT = 2.0
# How long a caller waits before its call counts as dropped in silence.
STALL_TIMEOUT = 1.0

MATRIX_IDS = [f"{t}-{s}" for t, s in TRANSPORT_SERIALIZER_MATRIX]
over_matrix = pytest.mark.parametrize("transport,serializer", TRANSPORT_SERIALIZER_MATRIX,
                                      ids=MATRIX_IDS)

# The bystander's procedures and topic.
ECHO = "com.hostile.bystander.echo"
HANG = "com.hostile.bystander.hang"  # registered, never answered
NEWS = "com.hostile.bystander.news"

OTHER_TRANSPORT = {"websocket": "rawsocket", "rawsocket": "websocket"}
NEXT_SERIALIZER = {"json": "msgpack", "msgpack": "cbor", "cbor": "json"}

# Configuration files for the cases that need small limits.
SMALL_MESSAGES = "[limits]\nmax_message_size = 8192\n"
SMALL_MESSAGE_LIMIT = 8192
SHORT_HANDSHAKE = "[limits]\nhandshake_timeout_secs = 1\n"
HANDSHAKE_TIMEOUT = 1.0


def short(value, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


# ------------------------------------------------------------------------------------------------
# The bystander: a well-behaved session that must not notice any of this
# ------------------------------------------------------------------------------------------------


class Bystander:
    """A hand-written session that answers calls to ECHO and collects events on NEWS.

    A background task reads everything the router sends it; requests are matched to their
    answers by request id, so a check never waits longer than REPLY_TIMEOUT.
    """

    def __init__(self, peer: RawPeer, prefix: str):
        self.peer = peer
        self.echo = f"{prefix}.echo"
        self.hang = f"{prefix}.hang"
        self.news = f"{prefix}.news"
        self.echo_registration = 0
        self.hang_registration = 0
        self.news_subscription = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[list] = []
        self.event_added = asyncio.Event()
        self.unexpected: list[list] = []
        self.invocations: list[list] = []
        self.closed: str | None = None
        self._task: asyncio.Task | None = None

    @classmethod
    async def join(cls, router, transport: str, serializer: str,
                   prefix: str = "com.hostile.bystander") -> "Bystander":
        peer = await RawPeer.open(router, transport, serializer)
        self = cls(peer, prefix)
        await peer.join()
        self.echo_registration = await peer.register(self.echo)
        self.hang_registration = await peer.register(self.hang)
        self.news_subscription = await peer.subscribe(self.news)
        self._task = asyncio.create_task(self._pump())
        return self

    @property
    def name(self) -> str:
        return f"bystander ({self.peer.transport}/{self.peer.serializer})"

    async def _pump(self) -> None:
        try:
            while True:
                msg = decode(self.peer.serializer, await self.peer._recv_payload())
                kind = msg[0]
                if kind == INVOCATION:
                    self.invocations.append(msg)
                if kind == INVOCATION and msg[2] == self.echo_registration:
                    await self.peer.send([YIELD, msg[1], {}, *msg[4:]])
                elif kind in (INVOCATION, INTERRUPT):
                    pass  # calls to HANG are never answered
                elif kind == EVENT:
                    self.events.append(msg)
                    self.event_added.set()
                elif kind in (RESULT, PUBLISHED) and msg[1] in self.pending:
                    self._resolve(msg[1], msg)
                elif kind == ERROR and msg[2] in self.pending:
                    self._resolve(msg[2], msg)
                else:
                    self.unexpected.append(msg)
        except PeerClosed as e:
            self.closed = str(e)
        except Exception as e:  # a frame the bystander cannot even decode
            self.closed = f"reading failed: {e!r}"
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(PeerClosed(self.closed or "reader stopped"))

    def _resolve(self, request: int, msg: list) -> None:
        fut = self.pending[request]
        if not fut.done():
            fut.set_result(msg)

    def start(self, kind: int, *fields) -> tuple[int, asyncio.Future]:
        """Sends ``[kind, <request id>, *fields]`` without waiting for the answer."""
        request = self.peer.next_request_id()
        fut = asyncio.get_running_loop().create_future()
        self.pending[request] = fut
        asyncio.ensure_future(self.peer.send([kind, request, *fields]))
        return request, fut

    async def ask(self, kind: int, *fields, timeout: float = REPLY_TIMEOUT) -> list:
        request, fut = self.start(kind, *fields)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.name}: no answer to message type {kind} within {timeout}s"
            ) from None
        finally:
            self.pending.pop(request, None)

    async def problems(self) -> list[str]:
        """What is wrong with the bystander's view of the router (empty: all is well)."""
        if self.closed is not None:
            return [f"{self.name}: its session was closed: {self.closed}"]
        problems = []
        token = secrets.token_hex(6)
        try:
            reply = await self.ask(CALL, {}, self.echo, [token])
            if reply[0] != RESULT or reply[3:4] != [[token]]:
                problems.append(f"{self.name}: CALL {self.echo} answered with {short(reply)}")
            reply = await self.ask(PUBLISH, {"acknowledge": True, "exclude_me": False},
                                   self.news, [token])
            if reply[0] != PUBLISHED:
                problems.append(f"{self.name}: PUBLISH {self.news} answered with {short(reply)}")
            else:
                await self.wait_event(token)
        except (AssertionError, PeerClosed) as e:
            problems.append(str(e))
        if self.unexpected:
            problems.append(f"{self.name}: unexpected messages: {short(self.unexpected)}")
        return problems

    async def wait_event(self, token: str, timeout: float = REPLY_TIMEOUT) -> list:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event[4:5] == [[token]]:
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no EVENT with {token!r} within {timeout}s")
            self.event_added.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.event_added.wait(), remaining)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.peer.close()


def bystander_on(transport: str):
    """Puts the bystander on ``transport`` for a test that has no ``transport`` parameter."""
    def mark(test):
        test.bystander_transport = transport
        return test
    return mark


@pytest_asyncio.fixture
async def bystander(router, request):
    """Joined before the hostile client: the other transport and the next serializer."""
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec else {}
    transport = OTHER_TRANSPORT.get(params.get("transport"),
                                    getattr(request.function, "bystander_transport", "websocket"))
    serializer = NEXT_SERIALIZER.get(params.get("serializer"), "json")
    b = await Bystander.join(router, transport, serializer)
    yield b
    await b.stop()


async def fresh_client_problems(router, transport: str, serializer: str) -> list[str]:
    """A new client on the hostile one's transport can still join and call."""
    what = f"a new {transport}/{serializer} client"
    try:
        peer = await asyncio.wait_for(RawPeer.open(router, transport, serializer),
                                      REPLY_TIMEOUT + 3)
    except Exception as e:
        return [f"{what} could not connect: {e!r}"]
    try:
        reply = await peer.hello()
        if reply[0] != WELCOME:
            return [f"{what} was not welcomed: {short(reply)}"]
        token = secrets.token_hex(6)
        request, reply = await peer.request(CALL, {}, ECHO, [token])
        if reply[:2] != [RESULT, request] or reply[3:4] != [[token]]:
            return [f"{what}: CALL {ECHO} answered with {short(reply)}"]
        return []
    except (PeerClosed, asyncio.TimeoutError, AssertionError) as e:
        return [f"{what} failed: {e!r}"]
    finally:
        await peer.close()


async def finish(router, bystander: Bystander, problems: list[str],
                 transport: str | None = None, serializer: str | None = None) -> None:
    """The end of every test: the router still runs and still serves; then report everything."""
    problems = list(problems)
    if not router.is_running():
        problems.append(f"the router process exited with code {router.proc.poll()}")
    else:
        problems += await bystander.problems()
        if transport is not None:
            problems += await fresh_client_problems(router, transport, serializer)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------------
# Reading the router's answer
# ------------------------------------------------------------------------------------------------


async def next_message(peer: RawPeer, timeout: float = REPLY_TIMEOUT):
    """``("message", msg)``, ``("closed", why)`` or ``("silence", None)``."""
    try:
        return "message", await peer.recv(timeout)
    except PeerClosed as e:
        return "closed", str(e)
    except asyncio.TimeoutError:
        return "silence", None


async def protocol_violation_problems(peer: RawPeer, what: str) -> list[str]:
    """The router must answer with ABORT protocol_violation (with a message) and close."""
    kind, value = await next_message(peer)
    if kind == "closed":
        return [f"{what}: the router closed the transport without ABORT ({value})"]
    if kind == "silence":
        return [f"{what}: no answer within {REPLY_TIMEOUT}s "
                f"(expected ABORT {PROTOCOL_VIOLATION})"]
    msg = value
    if msg[0] != ABORT:
        return [f"{what}: expected ABORT {PROTOCOL_VIOLATION}, got {short(msg)}"]
    problems = []
    if msg[2:3] != [PROTOCOL_VIOLATION]:
        problems.append(f"{what}: ABORT with reason {msg[2:3]!r}, expected {PROTOCOL_VIOLATION}")
    details = msg[1] if isinstance(msg[1], dict) else {}
    if not (isinstance(details.get("message"), str) and details["message"]):
        problems.append(f"{what}: ABORT without a Details.message: {short(msg)}")
    try:
        after = await peer.wait_closed(REPLY_TIMEOUT)
    except asyncio.TimeoutError:
        problems.append(f"{what}: the transport stayed open {REPLY_TIMEOUT}s after ABORT")
    else:
        if after:
            problems.append(f"{what}: messages after ABORT: {short(after)}")
    return problems


async def error_problems(peer: RawPeer, request_type: int, request: int, uri: str,
                         what: str) -> list[str]:
    """The router must answer with ``[ERROR, request_type, request, Details, uri, ...]``."""
    kind, value = await next_message(peer)
    if kind != "message":
        return [f"{what}: expected ERROR {uri}, got {kind} {value or ''}".rstrip()]
    msg = value
    if msg[:3] != [ERROR, request_type, request] or msg[4:5] != [uri]:
        return [f"{what}: expected [ERROR, {request_type}, {request}, {{}}, {uri!r}, ...], "
                f"got {short(msg)}"]
    if not isinstance(msg[3], dict):
        return [f"{what}: ERROR.Details is not a dictionary: {short(msg)}"]
    return []


async def closed_problems(peer: RawPeer, what: str, timeout: float = REPLY_TIMEOUT) -> list[str]:
    """The router must close the connection; at most an ABORT protocol_violation before."""
    try:
        seen = await peer.wait_closed(timeout)
    except asyncio.TimeoutError:
        return [f"{what}: the connection was still open after {timeout}s"]
    except Exception as e:  # a frame the harness cannot even read is also a wrong answer
        return [f"{what}: unreadable answer instead of a close: {e!r}"]
    wrong = [m for m in seen if m[:1] != [ABORT] or m[2:3] != [PROTOCOL_VIOLATION]]
    if wrong:
        return [f"{what}: messages before the close: {short(seen)}"]
    return []


async def still_usable_problems(peer: RawPeer, what: str) -> list[str]:
    """After a refused request, the same session calls and publishes successfully."""
    token = secrets.token_hex(6)
    try:
        request, reply = await peer.request(CALL, {}, ECHO, [token])
        if reply[:2] != [RESULT, request] or reply[3:4] != [[token]]:
            return [f"{what}: afterwards, CALL {ECHO} got {short(reply)}"]
        request, reply = await peer.request(PUBLISH, {"acknowledge": True}, NEWS, [token])
        if reply[:2] != [PUBLISHED, request]:
            return [f"{what}: afterwards, PUBLISH {NEWS} got {short(reply)}"]
    except (PeerClosed, asyncio.TimeoutError) as e:
        return [f"{what}: the session is no longer usable: {e!r}"]
    return []


async def send_bytes(peer: RawPeer, data: bytes) -> None:
    """Sends ``data`` as one WAMP message, unchanged: a text frame for JSON over WebSocket."""
    if peer._ws is not None:
        await peer._ws.send(data, text=peer.serializer == "json")
    else:
        await peer.send_encoded(data)


async def hostile_peer(clients, transport: str, serializer: str, join: bool = True) -> RawPeer:
    peer = await clients.raw(transport, serializer)
    if join:
        await peer.join()
    return peer


# ------------------------------------------------------------------------------------------------
# Malformed payloads: bytes that are not a WAMP message in the serializer
# ------------------------------------------------------------------------------------------------

# Valid in the serializer, but not a WAMP message.
NOT_A_MESSAGE = {
    "dict": {"type": 48},
    "empty-list": [],
    "string": "HELLO",
    "integer": 48,
    "code-as-string": ["48", 1, {}, "com.example.p"],
    "code-null": [None, 1, {}, "com.example.p"],
    "code-negative": [-48, 1, {}, "com.example.p"],
    "code-fraction": [48.5, 1, {}, "com.example.p"],
    "nested-message": [[48, 1, {}, "com.example.p"]],
    "missing-fields": [SUBSCRIBE, 1],
    "too-many-fields": [SUBSCRIBE, 1, {}, "com.example.t", "extra"],
}

# Not valid in the serializer at all.
GARBAGE = {
    "json": {
        "prose": b"this is not json",
        "empty": b"",
        "unterminated": b"[48,1,{},\"com.example.p\"",
        "extra-bracket": b"[48,1,{},\"com.example.p\"]]",
        "trailing-text": b"[48,1,{},\"com.example.p\"] trailing",
        "single-quotes": b"[48,1,{},'com.example.p']",
        "nan": b"[48,1,{},\"com.example.p\",[NaN]]",
        "nul-bytes": b"\x00\x00\x00\x00",
        "two-messages": b"[48,1,{},\"com.example.p\"][48,2,{},\"com.example.p\"]",
    },
    "msgpack": {
        "reserved-c1": b"\xc1",
        "empty": b"",
        "truncated-array": b"\x94\x30\x01",
        "trailing-bytes": b"\x94\x20\x01\x80\xa1x\xc0",
        "array16-empty": b"\xdc\xff\xff",
        "array32-huge": b"\xdd\xff\xff\xff\xff",
        "ext-top-level": b"\xd4\x01\x00",
        "truncated-str": b"\x94\x20\x01\x80\xd9\xff" + b"com",
        "map32-huge-options": b"\x94\x20\x01\xdf\xff\xff\xff\xff",
    },
    "cbor": {
        "break": b"\xff",
        "empty": b"",
        "truncated-array": b"\x84\x18\x20\x01",
        "reserved-info": b"\x1c",
        "unterminated-indefinite": b"\x9f\x18\x20\x01",
        "array-2^64": b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",
        "trailing-bytes": b"\x84\x18\x20\x01\xa0\x61x\x00",
        "map-huge-options": b"\x84\x18\x20\x01\xbb\xff\xff\xff\xff\xff\xff\xff\xff",
        "unterminated-text": b"\x84\x18\x20\x01\xa0\x7f\x61a",
    },
}


@over_matrix
@pytest.mark.parametrize("phase", ["before-hello", "established"])
async def test_malformed_payload_is_aborted_with_protocol_violation(
    router, bystander, clients, transport, serializer, phase
):
    problems = []
    cases = {**{f"garbage:{k}": v for k, v in GARBAGE[serializer].items()},
             **{f"not-a-message:{k}": encode(serializer, v) for k, v in NOT_A_MESSAGE.items()}}
    for name, data in cases.items():
        peer = await hostile_peer(clients, transport, serializer, join=phase == "established")
        await send_bytes(peer, data if isinstance(data, bytes) else data.encode())
        problems += await protocol_violation_problems(peer, f"{name} {short(data, 60)}")
    await finish(router, bystander, problems, transport, serializer)


@over_matrix
@pytest.mark.parametrize("where", ["options", "arguments"])
@pytest.mark.parametrize("depth", [100, 100_000])
async def test_deeply_nested_values_do_not_hurt_the_router(
    router, bystander, clients, transport, serializer, where, depth
):
    """Nesting beyond what the router decodes is refused: ABORT, or ERROR for the call."""
    nested: object = "leaf"
    for _ in range(depth):
        nested = [nested]
    if where == "options":
        msg = [CALL, 1, {"x": nested}, ECHO, []]
    else:
        msg = [CALL, 1, {}, ECHO, [nested]]
    # The Python encoders recurse (cbor2 even crashes): very deep values are written by hand.
    data = (encode(serializer, msg) if depth <= 1000
            else _encode_nested_by_hand(serializer, where, depth))
    peer = await hostile_peer(clients, transport, serializer)
    await send_bytes(peer, data if isinstance(data, bytes) else data.encode())
    kind, value = await next_message(peer, STALL_TIMEOUT)
    problems = []
    what = f"CALL with {where} nested {depth} deep"
    if kind == "message" and value[:1] == [ERROR]:
        problems += [] if value[:3] == [ERROR, CALL, 1] else [f"{what}: got {short(value)}"]
    elif kind == "message" and value[:1] == [RESULT] and depth <= 100:
        pass  # a router may accept depth 100
    elif kind == "message" and value[:1] == [ABORT]:
        if value[2:3] != [PROTOCOL_VIOLATION]:
            problems.append(f"{what}: ABORT {short(value)}")
    else:
        problems.append(f"{what}: expected ABORT {PROTOCOL_VIOLATION} or an ERROR for the call, "
                        f"got {kind} {short(value)}")
    await finish(router, bystander, problems, transport, serializer)


def _encode_nested_by_hand(serializer: str, where: str, depth: int) -> bytes:
    """Deep nesting without recursion in the encoder: one-element arrays, opened ``depth`` times."""
    if serializer == "json":
        inner = b"[" * depth + b'"leaf"' + b"]" * depth
        if where == "options":
            return b'[48,1,{"x":' + inner + b'},"' + ECHO.encode() + b'",[]]'
        return b'[48,1,{},"' + ECHO.encode() + b'",[' + inner + b"]]"
    one = b"\x91" if serializer == "msgpack" else b"\x81"
    leaf = b"\xa4leaf" if serializer == "msgpack" else b"\x64leaf"
    inner = one * depth + leaf
    if serializer == "msgpack":
        head, proc = b"\x95\x30\x01", msgpack.packb(ECHO)
        empty_map, empty_list, map1 = b"\x80", b"\x90", b"\x81\xa1x"
    else:
        head, proc = b"\x85\x18\x30\x01", cbor2.dumps(ECHO)
        empty_map, empty_list, map1 = b"\xa0", b"\x80", b"\xa1\x61x"
    if where == "options":
        return head + map1 + inner + proc + empty_list
    return head + empty_map + proc + one + inner


# ------------------------------------------------------------------------------------------------
# Wrong types in every field of every message a client sends
# ------------------------------------------------------------------------------------------------

# Values of the wrong type for each kind of field.
WRONG = {
    "id": ["1", 1.5, None, [1]],
    "type": ["68", None, {}],
    "dict": [[], "x", None, 7],
    "uri": [7, None, [], {}],
    "args": [{}, "x", 7],
    "kwargs": [[], "x", 7],
    "str": [7, None, {}],
}


class Scenario:
    """Builds one client message on a fresh hostile session, and knows the right answer to it.

    ``build`` sets up whatever the message refers to (a pending invocation for YIELD, a
    subscription for UNSUBSCRIBE, ...) and returns the valid message; ``accepted`` checks the
    router's answer to the valid message, so the wrong-type cases are known to fail only because
    of the one field that was changed.
    """

    def __init__(self, fields: dict[int, str], build, accepted, join: bool = True):
        self.fields = fields  # index in the message -> kind of field
        self.build = build
        self.accepted = accepted
        self.join = join


async def _build_hello(peer, bystander):
    return [HELLO, REALM, {"roles": RAW_CLIENT_ROLES}]


async def _accept_hello(peer, bystander, msg):
    reply = await peer.recv()
    assert reply[0] == WELCOME, short(reply)


async def _build_goodbye(peer, bystander):
    return [GOODBYE, {}, "wamp.close.close_realm"]


async def _accept_goodbye(peer, bystander, msg):
    reply = await peer.recv()
    assert reply[0] == GOODBYE and reply[2] == "wamp.close.goodbye_and_out", short(reply)


async def _build_abort(peer, bystander):
    return [ABORT, {"message": "leaving"}, "wamp.close.close_realm"]


async def _accept_abort(peer, bystander, msg):
    seen = await peer.wait_closed(REPLY_TIMEOUT)
    assert seen == [], f"ABORT is never answered, got {short(seen)}"


async def _build_subscribe(peer, bystander):
    return [SUBSCRIBE, peer.next_request_id(), {}, "com.hostile.topic"]


async def _accept_subscribe(peer, bystander, msg):
    reply = await peer.recv()
    assert reply[:2] == [SUBSCRIBED, msg[1]], short(reply)


async def _build_unsubscribe(peer, bystander):
    subscription = await peer.subscribe("com.hostile.topic")
    return [UNSUBSCRIBE, peer.next_request_id(), subscription]


async def _accept_unsubscribe(peer, bystander, msg):
    reply = await peer.recv()
    assert reply[:2] == [UNSUBSCRIBED, msg[1]], short(reply)


async def _build_publish(peer, bystander):
    return [PUBLISH, peer.next_request_id(), {"acknowledge": True}, NEWS, ["x"], {"k": 1}]


async def _accept_publish(peer, bystander, msg):
    reply = await peer.recv()
    assert reply[:2] == [PUBLISHED, msg[1]], short(reply)


async def _build_register(peer, bystander):
    return [REGISTER, peer.next_request_id(), {}, "com.hostile.procedure"]


async def _accept_register(peer, bystander, msg):
    reply = await peer.recv()
    assert reply[:2] == [REGISTERED, msg[1]], short(reply)


async def _build_unregister(peer, bystander):
    registration = await peer.register("com.hostile.procedure")
    return [UNREGISTER, peer.next_request_id(), registration]


async def _accept_unregister(peer, bystander, msg):
    reply = await peer.recv()
    assert reply[:2] == [UNREGISTERED, msg[1]], short(reply)


async def _build_call(peer, bystander):
    return [CALL, peer.next_request_id(), {}, ECHO, ["x"], {"k": 1}]


async def _accept_call(peer, bystander, msg):
    reply = await peer.recv()
    assert reply[:2] == [RESULT, msg[1]], short(reply)


async def _build_cancel(peer, bystander):
    request = peer.next_request_id()
    await peer.send([CALL, request, {}, HANG, []])
    await asyncio.sleep(0.05)  # let the router route the call before it is canceled
    return [CANCEL, request, {"mode": "skip"}]


async def _accept_cancel(peer, bystander, msg):
    reply = await peer.recv()
    assert reply[:3] == [ERROR, CALL, msg[1]] and reply[4] == "wamp.error.canceled", short(reply)


async def _pending_invocation(peer, bystander) -> int:
    """Registers a procedure on the hostile session and has the bystander call it."""
    procedure = f"com.hostile.callee.{secrets.token_hex(4)}"
    await peer.register(procedure)
    _, bystander.last_call = bystander.start(CALL, {}, procedure, ["question"])
    invocation = await peer.recv()
    assert invocation[0] == INVOCATION, short(invocation)
    return invocation[1]


async def _build_yield(peer, bystander):
    return [YIELD, await _pending_invocation(peer, bystander), {}, ["answer"], {"k": 1}]


async def _accept_yield(peer, bystander, msg):
    reply = await asyncio.wait_for(bystander.last_call, REPLY_TIMEOUT)
    assert reply[0] == RESULT and reply[3] == ["answer"], short(reply)


async def _build_error(peer, bystander):
    request = await _pending_invocation(peer, bystander)
    return [ERROR, INVOCATION, request, {}, "com.hostile.error", ["why"], {"k": 1}]


async def _accept_error(peer, bystander, msg):
    reply = await asyncio.wait_for(bystander.last_call, REPLY_TIMEOUT)
    assert reply[0] == ERROR and reply[4] == "com.hostile.error", short(reply)


SCENARIOS = {
    "HELLO": Scenario({1: "uri", 2: "dict"}, _build_hello, _accept_hello, join=False),
    "GOODBYE": Scenario({1: "dict", 2: "uri"}, _build_goodbye, _accept_goodbye),
    "ABORT": Scenario({1: "dict", 2: "uri"}, _build_abort, _accept_abort),
    "SUBSCRIBE": Scenario({1: "id", 2: "dict", 3: "uri"}, _build_subscribe, _accept_subscribe),
    "UNSUBSCRIBE": Scenario({1: "id", 2: "id"}, _build_unsubscribe, _accept_unsubscribe),
    "PUBLISH": Scenario({1: "id", 2: "dict", 3: "uri", 4: "args", 5: "kwargs"},
                        _build_publish, _accept_publish),
    "REGISTER": Scenario({1: "id", 2: "dict", 3: "uri"}, _build_register, _accept_register),
    "UNREGISTER": Scenario({1: "id", 2: "id"}, _build_unregister, _accept_unregister),
    "CALL": Scenario({1: "id", 2: "dict", 3: "uri", 4: "args", 5: "kwargs"},
                     _build_call, _accept_call),
    "CANCEL": Scenario({1: "id", 2: "dict"}, _build_cancel, _accept_cancel),
    "YIELD": Scenario({1: "id", 2: "dict", 3: "args", 4: "kwargs"}, _build_yield, _accept_yield),
    "ERROR": Scenario({1: "type", 2: "id", 3: "dict", 4: "uri", 5: "args", 6: "kwargs"},
                      _build_error, _accept_error),
}

FIELD_CASES = [(name, index) for name, s in SCENARIOS.items() for index in s.fields]


@over_matrix
@pytest.mark.parametrize("message,field", FIELD_CASES,
                         ids=[f"{m}[{i}]" for m, i in FIELD_CASES])
async def test_wrong_type_in_a_field_is_aborted_with_protocol_violation(
    router, bystander, clients, transport, serializer, message, field
):
    scenario = SCENARIOS[message]
    problems = []
    # The valid message first: the router must accept it, or the cases below prove nothing.
    peer = await hostile_peer(clients, transport, serializer, join=scenario.join)
    valid = await scenario.build(peer, bystander)
    await peer.send(valid)
    try:
        await scenario.accepted(peer, bystander, valid)
    except (AssertionError, PeerClosed, asyncio.TimeoutError) as e:
        problems.append(f"the valid {message} {short(valid)} was not accepted: {e!r}")
    for wrong in WRONG[scenario.fields[field]]:
        peer = await hostile_peer(clients, transport, serializer, join=scenario.join)
        msg = await scenario.build(peer, bystander)
        msg[field] = wrong
        await peer.send(msg)
        if message == "ABORT":
            # ABORT is never answered (spec): closing, with or without an ABORT, is fine.
            problems += await closed_problems(peer, f"{message} {short(msg)}")
        else:
            problems += await protocol_violation_problems(peer, f"{message} {short(msg)}")
    await finish(router, bystander, problems, transport, serializer)


# ------------------------------------------------------------------------------------------------
# Request ids outside [1, 2^53]
# ------------------------------------------------------------------------------------------------

ID_REQUESTS = {
    "SUBSCRIBE": lambda r: [SUBSCRIBE, r, {}, "com.hostile.topic"],
    "REGISTER": lambda r: [REGISTER, r, {}, f"com.hostile.procedure_{secrets.token_hex(4)}"],
    "CALL": lambda r: [CALL, r, {}, ECHO, ["x"]],
    "PUBLISH": lambda r: [PUBLISH, r, {"acknowledge": True}, NEWS, ["x"]],
}
ID_ANSWERS = {"SUBSCRIBE": SUBSCRIBED, "REGISTER": REGISTERED, "CALL": RESULT,
              "PUBLISH": PUBLISHED}


@over_matrix
@pytest.mark.parametrize("message", list(ID_REQUESTS))
async def test_request_id_outside_the_id_range_is_aborted(
    router, bystander, clients, transport, serializer, message
):
    """IDs are integers in [1, 2^53] (spec, "IDs"); anything else makes the message malformed."""
    problems = []
    # 2^53 itself is valid.
    peer = await hostile_peer(clients, transport, serializer)
    await peer.send(ID_REQUESTS[message](MAX_ID))
    kind, reply = await next_message(peer)
    if kind != "message" or reply[:2] != [ID_ANSWERS[message], MAX_ID]:
        problems.append(f"{message} with request id 2^53 (valid) got {kind} {short(reply)}")
    bad = [0, MAX_ID + 1, 2**63, 2**64 - 1, -1]
    if serializer != "msgpack":  # MessagePack has no integers beyond 64 bits
        bad.append(2**64)
    for request in bad:
        peer = await hostile_peer(clients, transport, serializer)
        msg = ID_REQUESTS[message](request)
        await peer.send(msg)
        problems += await protocol_violation_problems(peer, f"{message} with request id {request}")
    await finish(router, bystander, problems, transport, serializer)


# ------------------------------------------------------------------------------------------------
# Unknown message codes, and messages out of state
# ------------------------------------------------------------------------------------------------


@over_matrix
@pytest.mark.parametrize("code", [0, 7, 99, 1024, -1, 2**32])
async def test_unknown_message_code_is_aborted_with_protocol_violation(
    router, bystander, clients, transport, serializer, code
):
    problems = []
    for join in (False, True):
        peer = await hostile_peer(clients, transport, serializer, join=join)
        await peer.send([code, 1, {}, "com.hostile.topic"])
        phase = "established" if join else "before HELLO"
        problems += await protocol_violation_problems(peer, f"message code {code} ({phase})")
    await finish(router, bystander, problems, transport, serializer)


BEFORE_HELLO = {
    "CALL": [CALL, 1, {}, ECHO, []],
    "SUBSCRIBE": [SUBSCRIBE, 1, {}, NEWS],
    "PUBLISH": [PUBLISH, 1, {"acknowledge": True}, NEWS, []],
    "REGISTER": [REGISTER, 1, {}, "com.hostile.procedure"],
    "UNSUBSCRIBE": [UNSUBSCRIBE, 1, 1],
    "YIELD": [YIELD, 1, {}],
    "ERROR": [ERROR, INVOCATION, 1, {}, "com.hostile.error"],
    "GOODBYE": [GOODBYE, {}, "wamp.close.close_realm"],
    "AUTHENTICATE": [AUTHENTICATE, "signature", {}],
    "WELCOME": [WELCOME, 1, {"roles": {"broker": {}}}],
    "CHALLENGE": [CHALLENGE, "ticket", {}],
    "EVENT": [EVENT, 1, 1, {}],
    "RESULT": [RESULT, 1, {}],
    "HELLO-without-roles": [HELLO, REALM, {}],
    "HELLO-with-empty-roles": [HELLO, REALM, {"roles": {}}],
    "HELLO-with-roles-list": [HELLO, REALM, {"roles": ["caller"]}],
}


@over_matrix
@pytest.mark.parametrize("message", list(BEFORE_HELLO))
async def test_message_before_hello_is_aborted_with_protocol_violation(
    router, bystander, clients, transport, serializer, message
):
    peer = await hostile_peer(clients, transport, serializer, join=False)
    await peer.send(BEFORE_HELLO[message])
    problems = await protocol_violation_problems(peer, f"{message} before HELLO")
    await finish(router, bystander, problems, transport, serializer)


# Well-formed messages a client may not send on an established session.
ESTABLISHED_OUT_OF_STATE = {
    "second-HELLO": [HELLO, REALM, {"roles": RAW_CLIENT_ROLES}],
    "WELCOME": [WELCOME, 12345, {"roles": {"broker": {}}}],
    "CHALLENGE": [CHALLENGE, "ticket", {}],
    "AUTHENTICATE": [AUTHENTICATE, "signature", {}],
    "PUBLISHED": [PUBLISHED, 1, 1],
    "SUBSCRIBED": [SUBSCRIBED, 1, 1],
    "UNSUBSCRIBED": [UNSUBSCRIBED, 1],
    "EVENT": [EVENT, 1, 1, {}, ["x"]],
    "RESULT": [RESULT, 1, {}, ["x"]],
    "REGISTERED": [REGISTERED, 1, 1],
    "UNREGISTERED": [UNREGISTERED, 1],
    "INVOCATION": [INVOCATION, 1, 1, {}, ["x"]],
    "INTERRUPT": [INTERRUPT, 1, {}],
    "YIELD-for-unknown-invocation": [YIELD, 77, {}, ["x"]],
    "ERROR-for-unknown-invocation": [ERROR, INVOCATION, 77, {}, "com.hostile.error"],
    "ERROR-for-CALL": [ERROR, CALL, 1, {}, "com.hostile.error"],
    "ERROR-for-SUBSCRIBE": [ERROR, SUBSCRIBE, 1, {}, "com.hostile.error"],
    "ERROR-for-UNSUBSCRIBE": [ERROR, UNSUBSCRIBE, 1, {}, "com.hostile.error"],
    "ERROR-for-PUBLISH": [ERROR, PUBLISH, 1, {}, "com.hostile.error"],
    "ERROR-for-REGISTER": [ERROR, REGISTER, 1, {}, "com.hostile.error"],
    "ERROR-for-UNREGISTER": [ERROR, UNREGISTER, 1, {}, "com.hostile.error"],
    "ERROR-for-CANCEL": [ERROR, CANCEL, 1, {}, "com.hostile.error"],
    "ERROR-for-INTERRUPT": [ERROR, INTERRUPT, 1, {}, "com.hostile.error"],
    "ERROR-for-HELLO": [ERROR, HELLO, 1, {}, "com.hostile.error"],
    "ERROR-for-EVENT": [ERROR, EVENT, 1, {}, "com.hostile.error"],
    "ERROR-for-type-99": [ERROR, 99, 1, {}, "com.hostile.error"],
}


@over_matrix
@pytest.mark.parametrize("message", list(ESTABLISHED_OUT_OF_STATE))
async def test_message_out_of_state_is_aborted_with_protocol_violation(
    router, bystander, clients, transport, serializer, message
):
    peer = await hostile_peer(clients, transport, serializer)
    await peer.send(ESTABLISHED_OUT_OF_STATE[message])
    problems = await protocol_violation_problems(peer, f"{message} on an established session")
    await finish(router, bystander, problems, transport, serializer)


# ------------------------------------------------------------------------------------------------
# Invalid UTF-8
# ------------------------------------------------------------------------------------------------

# Byte sequences that are not UTF-8 (RFC 3629): a stray byte, an overlong "/", a UTF-16
# surrogate, a truncated sequence, a code point above U+10FFFF.
INVALID_UTF8 = {
    "stray-ff": b"\xff",
    "overlong-slash": b"\xc0\xaf",
    "surrogate": b"\xed\xa0\x80",
    "truncated": b"\xe2\x82",
    "above-10ffff": b"\xf4\x90\x80\x80",
}
PLACEHOLDER = "QQQQ"


def with_invalid_utf8(serializer: str, msg: list, bad: bytes) -> bytes:
    """``msg`` encoded, with the string PLACEHOLDER replaced by ``bad`` (lengths fixed up)."""
    encoded = encode(serializer, msg)
    if serializer == "json":
        return encoded.encode().replace(PLACEHOLDER.encode(), bad)
    # Rebuild the string header so that its length matches the new bytes.
    old = encode(serializer, PLACEHOLDER)
    if serializer == "msgpack":
        new = bytes([0xA0 | len(bad)]) + bad
    else:
        new = bytes([0x60 | len(bad)]) + bad
    assert encoded.count(old) == 1
    return encoded.replace(old, new)


@over_matrix
@pytest.mark.parametrize("where", ["topic", "options-key", "options-value"])
async def test_invalid_utf8_in_a_string_is_refused(
    router, bystander, clients, transport, serializer, where
):
    """A string that is not UTF-8 makes the message malformed: ABORT protocol_violation.

    JSON over WebSocket travels in text frames, whose payload must be UTF-8 (RFC 6455 8.1: the
    endpoint MUST fail the WebSocket connection); there a closed connection is the answer.
    """
    msg = {
        "topic": [SUBSCRIBE, 1, {}, PLACEHOLDER],
        "options-key": [SUBSCRIBE, 1, {PLACEHOLDER: True}, "com.hostile.topic"],
        "options-value": [SUBSCRIBE, 1, {"x_custom": PLACEHOLDER}, "com.hostile.topic"],
    }[where]
    problems = []
    # Control: with the placeholder left as valid UTF-8 the message is accepted.
    peer = await hostile_peer(clients, transport, serializer)
    await send_bytes(peer, with_invalid_utf8(serializer, msg, PLACEHOLDER.encode()))
    kind, reply = await next_message(peer)
    if kind != "message" or reply[:2] != [SUBSCRIBED, 1]:
        problems.append(f"control {short(msg)} was not accepted: {kind} {short(reply)}")
    for name, bad in INVALID_UTF8.items():
        peer = await hostile_peer(clients, transport, serializer)
        await send_bytes(peer, with_invalid_utf8(serializer, msg, bad))
        what = f"SUBSCRIBE with {name} {bad!r} in the {where}"
        if transport == "websocket" and serializer == "json":
            problems += await closed_problems(peer, what)
        else:
            problems += await protocol_violation_problems(peer, what)
    await finish(router, bystander, problems, transport, serializer)


@pytest.mark.parametrize("transport", ["websocket", "rawsocket"])
async def test_json_lone_surrogate_escape_is_refused(router, bystander, clients, transport):
    r"""``"\ud800"`` is valid JSON syntax but no Unicode scalar value: the message is malformed."""
    problems = []
    for escape in (r"\ud800", r"\udfff", r"\ud800\u0041"):
        peer = await hostile_peer(clients, transport, "json")
        text = '[32,1,{},"com.' + escape + '.topic"]'
        await send_bytes(peer, text.encode())
        problems += await protocol_violation_problems(peer, f"SUBSCRIBE to {text}")
    await finish(router, bystander, problems, transport, "json")


# ------------------------------------------------------------------------------------------------
# Well-formed requests the router refuses: ERROR, and the session stays usable
# ------------------------------------------------------------------------------------------------

INVALID_URIS = ["com.my topic", "com.#", "com..topic", "", ".com.topic", "com.topic.",
                "com.\ttab", "com.topic\n", "com.to#pic"]


@over_matrix
@pytest.mark.parametrize("message", ["SUBSCRIBE", "REGISTER", "CALL", "PUBLISH"])
async def test_invalid_uri_is_answered_with_invalid_uri_error(
    router, bystander, clients, transport, serializer, message
):
    uris = list(INVALID_URIS)
    if message in ("REGISTER", "PUBLISH"):
        # The wamp. namespace belongs to the router (spec, "Reserved URIs").
        uris += ["wamp.hostile.thing", "wamp.session.on_join"]
    peer = await hostile_peer(clients, transport, serializer)
    problems = []
    for uri in uris:
        request = peer.next_request_id()
        msg = {
            "SUBSCRIBE": [SUBSCRIBE, request, {}, uri],
            "REGISTER": [REGISTER, request, {}, uri],
            "CALL": [CALL, request, {}, uri, []],
            "PUBLISH": [PUBLISH, request, {"acknowledge": True}, uri, []],
        }[message]
        await peer.send(msg)
        found = await error_problems(peer, msg[0], request, "wamp.error.invalid_uri",
                                     f"{message} {uri!r}")
        problems += found
        if found and found[0].count("closed"):
            break
    problems += await still_usable_problems(peer, f"{message} with invalid URIs")
    await finish(router, bystander, problems, transport, serializer)


@over_matrix
async def test_publish_to_invalid_uri_without_acknowledge_is_dropped_silently(
    router, bystander, clients, transport, serializer
):
    """Without ``acknowledge`` a failed PUBLISH gets no answer at all (spec, PUBLISH)."""
    peer = await hostile_peer(clients, transport, serializer)
    for uri in ["com.my topic", "wamp.hostile.thing", ""]:
        await peer.send([PUBLISH, peer.next_request_id(), {}, uri, ["x"]])
    # The next answer the session gets must be the one to this call.
    problems = await still_usable_problems(peer, "PUBLISH to invalid URIs without acknowledge")
    await finish(router, bystander, problems, transport, serializer)


@over_matrix
async def test_refused_requests_get_errors_and_the_session_stays_usable(
    router, bystander, clients, transport, serializer
):
    peer = await hostile_peer(clients, transport, serializer)
    own = await peer.register("com.hostile.own")
    cases = [
        ([UNSUBSCRIBE, None, 424242], "wamp.error.no_such_subscription"),
        # Someone else's subscription and registration are not this session's to drop.
        ([UNSUBSCRIBE, None, bystander.news_subscription], "wamp.error.no_such_subscription"),
        ([UNREGISTER, None, 424242], "wamp.error.no_such_registration"),
        ([UNREGISTER, None, bystander.echo_registration], "wamp.error.no_such_registration"),
        ([CALL, None, {}, "com.hostile.nobody_home", []], "wamp.error.no_such_procedure"),
        ([CALL, None, {}, "wamp.hostile.no_such_meta", []], "wamp.error.no_such_procedure"),
        ([REGISTER, None, {}, ECHO], "wamp.error.procedure_already_exists"),
        ([REGISTER, None, {}, "com.hostile.own"], "wamp.error.procedure_already_exists"),
    ]
    problems = []
    for template, uri in cases:
        msg = list(template)
        msg[1] = peer.next_request_id()
        await peer.send(msg)
        problems += await error_problems(peer, msg[0], msg[1], uri, short(msg))
    problems += await still_usable_problems(peer, "after refused requests")
    # The bystander's registration is untouched: its procedure still answers (checked in finish).
    await peer.send([UNREGISTER, peer.next_request_id(), own])
    await finish(router, bystander, problems, transport, serializer)


# ------------------------------------------------------------------------------------------------
# Payloads the router cannot hand to the other side: the caller must still get an answer
# ------------------------------------------------------------------------------------------------

# Arguments valid enough to be routed without being decoded, but with no representation in
# JSON (or not valid in their own serializer at all).
UNDELIVERABLE_ARGS = {
    "msgpack": {
        "invalid-utf8-str": lambda: msgpack.packb(["ZZZZ"]).replace(b"ZZZZ", b"\xff\xfe\xfd\xfc"),
        "integer-map-key": lambda: msgpack.packb([{1: "x"}]),
        "ext-type": lambda: msgpack.packb([msgpack.ExtType(5, b"\x01")]),
        "nan": lambda: msgpack.packb([float("nan")]),
        "infinity": lambda: msgpack.packb([float("inf")]),
    },
    "cbor": {
        "invalid-utf8-text": lambda: cbor2.dumps(["ZZZZ"]).replace(b"ZZZZ", b"\xff\xfe\xfd\xfc"),
        "integer-map-key": lambda: cbor2.dumps([{1: "x"}]),
        "nan": lambda: cbor2.dumps([float("nan")]),
        "simple-value-99": lambda: b"\x81\xf8\x63",
    },
    "json": {
        "number-out-of-range": lambda: b"[1e400]",
        "lone-surrogate": lambda: b'["\\ud800"]',
    },
}
# The transport makes no difference to transcoding: the cases alternate between the two.
UNDELIVERABLE_CASES = [(("websocket", "rawsocket")[i % 2], s, name) for i, (s, name) in enumerate(
    (s, name) for s, cases in UNDELIVERABLE_ARGS.items() for name in cases)]


def call_with_raw_args(serializer: str, request: int, procedure: str, args: bytes) -> bytes:
    """A CALL whose Arguments element is exactly ``args``."""
    head = encode(serializer, [CALL, request, {}, procedure])
    if serializer == "json":
        return head.encode()[:-1] + b"," + args + b"]"
    if serializer == "msgpack":
        return b"\x95" + head[1:] + args  # fixarray of 4 -> 5
    return b"\x85" + head[1:] + args  # CBOR array of 4 -> 5


@pytest.mark.parametrize("transport,serializer,case", UNDELIVERABLE_CASES,
                         ids=[f"{s}-{c}-{t}" for t, s, c in UNDELIVERABLE_CASES])
async def test_call_whose_arguments_cannot_be_transcoded_is_still_answered(
    router, bystander, clients, transport, serializer, case
):
    """The dealer answers every CALL with RESULT or ERROR; it may not drop it in silence.

    The callee speaks another serializer (JSON, or MessagePack for a JSON caller), so the router
    has to transcode the arguments, which it cannot. Acceptable answers: ABORT protocol_violation
    for the caller (the payload was refused as malformed), or an ERROR for the CALL
    (e.g. wamp.error.invalid_argument).
    """
    callee_serializer = "msgpack" if serializer == "json" else "json"
    callee = await Bystander.join(router, OTHER_TRANSPORT[transport], callee_serializer,
                                  prefix="com.hostile.other")
    try:
        peer = await hostile_peer(clients, transport, serializer)
        await send_bytes(peer, call_with_raw_args(serializer, 1, callee.echo,
                                                  UNDELIVERABLE_ARGS[serializer][case]()))
        kind, reply = await next_message(peer, STALL_TIMEOUT)
        what = (f"CALL from {serializer} with {case} arguments to a {callee_serializer} callee")
        problems = []
        if kind == "silence":
            seen = (f"the callee got {short(callee.invocations)}" if callee.invocations
                    else "the callee got no INVOCATION either")
            problems.append(f"{what}: no answer within {STALL_TIMEOUT}s, the caller hangs; "
                            f"{seen}")
        elif kind == "closed":
            problems.append(f"{what}: connection closed without ABORT ({reply})")
        elif reply[:1] == [ABORT]:
            if reply[2:3] != [PROTOCOL_VIOLATION]:
                problems.append(f"{what}: ABORT {short(reply)}")
        elif reply[:3] != [ERROR, CALL, 1] and reply[:2] != [RESULT, 1]:
            problems.append(f"{what}: got {short(reply)}")
        problems += await callee.problems()
    finally:
        await callee.stop()
    await finish(router, bystander, problems, transport, serializer)


async def open_rawsocket(router, serializer: str, max_len_exp: int) -> RawPeer:
    """A RawSocket peer that announces ``2**(9 + max_len_exp)`` octets as its limit."""
    peer = RawPeer("rawsocket", serializer)
    peer._reader, peer._writer = await asyncio.wait_for(
        asyncio.open_connection(router.host, router.port), RECV_TIMEOUT)
    sid = RAWSOCKET_SERIALIZER_IDS[serializer]
    peer._writer.write(rawsocket_handshake_request(sid, max_len_exp))
    await peer._writer.drain()
    reply = await asyncio.wait_for(peer._reader.readexactly(4), RECV_TIMEOUT)
    assert reply[0] == 0x7F and reply[1] & 0x0F == sid, reply.hex()
    return peer


@over_matrix
async def test_call_too_large_for_the_callee_is_still_answered(
    router, bystander, clients, transport, serializer
):
    """A callee announced 1024 octets as its RawSocket limit; a 5000-octet call cannot reach it.

    The router must not send it the INVOCATION (RawSocket: "Router MUST NOT send messages larger
    than this size"), and the caller must still get an answer (ERROR) instead of hanging.
    """
    callee = await open_rawsocket(router, serializer, 1)
    problems = []
    try:
        await callee.join()
        await callee.register("com.hostile.tiny_callee")
        peer = await hostile_peer(clients, transport, serializer)
        await peer.send([CALL, 1, {}, "com.hostile.tiny_callee", ["x" * 5000]])
        kind, reply = await next_message(peer, STALL_TIMEOUT)
        if kind != "message" or reply[:3] != [ERROR, CALL, 1]:
            problems.append(f"CALL too large for its callee: expected ERROR for the call, got "
                            f"{kind} {short(reply)}")
        # The callee must not have received an INVOCATION larger than it accepts.
        with contextlib.suppress(asyncio.TimeoutError, asyncio.IncompleteReadError):
            header = await asyncio.wait_for(callee._reader.readexactly(4), 0.3)
            length = int.from_bytes(header[1:], "big")
            if length > 1024:
                problems.append(f"the router sent a {length}-octet frame to a peer that "
                                f"accepts 1024")
    finally:
        await callee.close()
    await finish(router, bystander, problems, transport, serializer)


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
@bystander_on("websocket")
async def test_rawsocket_client_with_the_smallest_limit_gets_an_answer_to_hello(
    router, bystander, serializer
):
    """A client may announce 512 octets (LENGTH 0), the smallest RawSocket limit, and the router
    MUST NOT send it anything longer. HELLO must still be answered: a WELCOME that fits (or an
    ABORT that says why), not silence until the handshake timeout."""
    peer = await open_rawsocket(router, serializer, 0)
    problems = []
    try:
        await peer.send([HELLO, REALM, {"roles": RAW_CLIENT_ROLES}])
        try:
            header = await asyncio.wait_for(peer._reader.readexactly(4), STALL_TIMEOUT)
        except asyncio.TimeoutError:
            problems.append(f"a {serializer} RawSocket client that accepts 512 octets got no "
                            f"answer to HELLO within {STALL_TIMEOUT}s")
        except asyncio.IncompleteReadError as e:
            problems.append(f"the router closed the connection after HELLO ({e.partial!r})")
        else:
            length = int.from_bytes(header[1:], "big")
            if header[0] != 0 or length > 512:
                problems.append(f"the router answered HELLO with a frame header {header.hex()} "
                                f"({length} octets) to a client that accepts 512")
            else:
                body = await asyncio.wait_for(peer._reader.readexactly(length), REPLY_TIMEOUT)
                reply = decode(serializer, body)
                if reply[0] not in (WELCOME, ABORT):
                    problems.append(f"HELLO got {short(reply)}")
    finally:
        await peer.close()
    await finish(router, bystander, problems, "rawsocket", serializer)


# ------------------------------------------------------------------------------------------------
# RawSocket framing
# ------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def tcp(router):
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(router.host, router.port), RECV_TIMEOUT)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError, OSError):
            await asyncio.wait_for(writer.wait_closed(), 2)


async def read_until_eof(reader: asyncio.StreamReader, timeout: float) -> tuple[bool, bytes]:
    """(whether the router closed within ``timeout``, what it sent before)."""
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False, data
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
            if not chunk:
                return True, data
            data += chunk
    except asyncio.TimeoutError:
        return False, data
    except ConnectionError:
        return True, data


async def rawsocket_session(router, serializer: str, reader, writer) -> None:
    """Handshake and HELLO on a plain TCP connection; returns once WELCOME arrived."""
    sid = RAWSOCKET_SERIALIZER_IDS[serializer]
    writer.write(rawsocket_handshake_request(sid))
    hello = encode(serializer, [HELLO, REALM, {"roles": RAW_CLIENT_ROLES}])
    writer.write(rawsocket_frame(0, hello.encode() if isinstance(hello, str) else hello))
    await writer.drain()
    reply = await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
    assert reply[0] == 0x7F and reply[1] & 0x0F == sid, reply.hex()
    header = await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
    body = await asyncio.wait_for(reader.readexactly(int.from_bytes(header[1:], "big")),
                                  RECV_TIMEOUT)
    assert decode(serializer, body)[0] == WELCOME


def rawsocket_frames_before_close(serializer: str, data: bytes) -> list:
    """Decodes what the router sent before closing (WAMP messages, or raw frame kinds)."""
    out = []
    while len(data) >= 4:
        kind, length = data[0], int.from_bytes(data[1:4], "big")
        body, data = data[4:4 + length], data[4 + length:]
        if kind == 0:
            try:
                out.append(decode(serializer, body))
            except Exception:
                out.append(("undecodable", body[:60]))
        else:
            out.append(("frame kind", kind))
    if data:
        out.append(("partial frame", data[:60]))
    return out


def only_abort(frames: list) -> bool:
    return all(isinstance(m, list) and m[:1] == [ABORT] and m[2:3] == [PROTOCOL_VIOLATION]
               for m in frames)


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
@pytest.mark.parametrize("case", ["body-short-then-eof", "header-short-then-eof",
                                  "handshake-short-then-eof", "hello-short-then-eof"])
async def test_truncated_rawsocket_frame_then_close_is_handled(router, bystander, serializer, case):
    """The client announces more than it sends and closes its side: the router closes too."""
    sid = RAWSOCKET_SERIALIZER_IDS[serializer]
    async with tcp(router) as (reader, writer):
        if case == "handshake-short-then-eof":
            writer.write(b"\x7f" + bytes([0xF0 | sid]))
        elif case == "hello-short-then-eof":
            writer.write(rawsocket_handshake_request(sid) + b"\x00\x00\x01\x00" + b"[1,")
        else:
            await rawsocket_session(router, serializer, reader, writer)
            if case == "body-short-then-eof":
                writer.write(b"\x00\x00\x00\x64" + b"0123456789")
            else:
                writer.write(b"\x00\x00")
        await writer.drain()
        writer.write_eof()
        closed, data = await read_until_eof(reader, REPLY_TIMEOUT)
    problems = []
    if not closed:
        problems.append(f"{case}: the router kept the connection open {REPLY_TIMEOUT}s after "
                        f"the client's EOF (sent {data[:80]!r})")
    await finish(router, bystander, problems)


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
async def test_truncated_rawsocket_frame_that_stalls_does_not_block_others(
    router, bystander, serializer
):
    """A frame that never completes occupies only its own connection."""
    async with tcp(router) as (reader, writer):
        await rawsocket_session(router, serializer, reader, writer)
        writer.write(b"\x00\x00\x10\x00" + b"[" * 10)  # announces 4096 octets, sends 10
        await writer.drain()
        await finish(router, bystander, [], "rawsocket", serializer)


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
@pytest.mark.parametrize("phase", ["before-hello", "established"])
async def test_rawsocket_reserved_bits_and_unknown_frame_types_fail_the_connection(
    router, bystander, serializer, phase
):
    """Frame header RRRR XTTT: RRRR MUST be zero, TTT 3-7 are reserved (RawSocket transport)."""
    problems = []
    sid = RAWSOCKET_SERIALIZER_IDS[serializer]
    for first in [0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x20, 0x40, 0x80, 0xF0, 0x11, 0x90]:
        async with tcp(router) as (reader, writer):
            if phase == "established":
                await rawsocket_session(router, serializer, reader, writer)
            else:
                writer.write(rawsocket_handshake_request(sid))
                await writer.drain()
                await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
            writer.write(bytes([first]) + b"\x00\x00\x02" + b"[]")
            await writer.drain()
            closed, data = await read_until_eof(reader, REPLY_TIMEOUT)
        frames = rawsocket_frames_before_close(serializer, data)
        if not closed:
            problems.append(f"frame type byte 0x{first:02x}: connection still open after "
                            f"{REPLY_TIMEOUT}s (router sent {short(frames)})")
        elif not only_abort(frames):
            problems.append(f"frame type byte 0x{first:02x}: router sent {short(frames)} "
                            f"before closing")
    await finish(router, bystander, problems, "rawsocket", serializer)


@pytest.mark.router_config(SMALL_MESSAGES)
@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
async def test_rawsocket_frame_over_the_announced_limit_fails_the_connection(
    router, bystander, serializer
):
    """The router announces its limit in the handshake; a longer frame MUST fail the connection."""
    sid = RAWSOCKET_SERIALIZER_IDS[serializer]
    problems = []
    async with tcp(router) as (reader, writer):
        writer.write(rawsocket_handshake_request(sid))
        await writer.drain()
        reply = await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
    announced = 2 ** (9 + (reply[1] >> 4))
    if announced != SMALL_MESSAGE_LIMIT:
        problems.append(f"handshake reply {reply.hex()} announces {announced} octets; "
                        f"limits.max_message_size is {SMALL_MESSAGE_LIMIT}")
    cases = {
        # One octet over, body sent in full.
        "limit+1-with-body": lambda: b"\x00" + (announced + 1).to_bytes(3, "big")
                                     + b"x" * (announced + 1),
        # 16M-1 announced, nothing follows: refused from the header alone.
        "16M-1-header-only": lambda: b"\x00\xff\xff\xff",
        # The X bit: exactly 16M octets.
        "x-bit-16M": lambda: b"\x08\x00\x00\x00",
        # An oversize PING is as bad as an oversize message.
        "ping-over-limit": lambda: b"\x01" + (announced + 1).to_bytes(3, "big")
                                   + b"p" * (announced + 1),
    }
    for name, frame in cases.items():
        async with tcp(router) as (reader, writer):
            await rawsocket_session(router, serializer, reader, writer)
            writer.write(frame())
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            closed, data = await read_until_eof(reader, REPLY_TIMEOUT)
        frames = rawsocket_frames_before_close(serializer, data)
        if not closed:
            problems.append(f"{name}: connection still open after {REPLY_TIMEOUT}s "
                            f"(router sent {short(frames)})")
        elif not only_abort(frames):
            problems.append(f"{name}: router sent {short(frames)} before closing")
    await finish(router, bystander, problems, "rawsocket", serializer)


@pytest.mark.router_config(SMALL_MESSAGES)
@over_matrix
async def test_message_just_under_the_limit_is_accepted(
    router, bystander, clients, transport, serializer
):
    """Control for the oversize cases: a message well inside the limit is routed normally."""
    peer = await hostile_peer(clients, transport, serializer)
    token = "y" * (SMALL_MESSAGE_LIMIT // 2)
    request, reply = await peer.request(CALL, {}, ECHO, [token])
    problems = []
    if reply[:2] != [RESULT, request] or reply[3:4] != [[token]]:
        problems.append(f"CALL of {SMALL_MESSAGE_LIMIT // 2} octets got {short(reply)}")
    await finish(router, bystander, problems, transport, serializer)


@pytest.mark.router_config(SMALL_MESSAGES)
@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
@pytest.mark.parametrize("shape", ["single-frame", "fragmented"])
@bystander_on("rawsocket")
async def test_websocket_message_over_max_message_size_closes_the_connection(
    router, bystander, clients, serializer, shape
):
    peer = await hostile_peer(clients, "websocket", serializer)
    request = peer.next_request_id()
    big = encode(serializer, [CALL, request, {}, ECHO, ["z" * (SMALL_MESSAGE_LIMIT + 100)]])
    if shape == "single-frame":
        await peer._ws.send(big)
    else:
        # Frames below the limit that only add up to a message above it.
        step = 1000
        await peer._ws.send([big[i:i + step] for i in range(0, len(big), step)])
    problems = await closed_problems(peer, f"{shape} WebSocket message of {len(big)} octets "
                                           f"(limit {SMALL_MESSAGE_LIMIT})")
    await finish(router, bystander, problems, "websocket", serializer)


@pytest.mark.parametrize("transport", ["websocket"])
@pytest.mark.parametrize("limit", [
    pytest.param(n, marks=pytest.mark.router_config(f"[limits]\nmax_message_size = {n}\n"))
    for n in (512, 1024, 4096, 4097)
])
async def test_websocket_is_served_with_a_small_max_message_size(
    router, bystander, transport, limit
):
    """docs/configuration.md: limits.max_message_size is "at least 512". Every such value must
    give a router that still serves WebSocket clients, not only RawSocket ones."""
    problems = []
    try:
        peer = await RawPeer.open(router, "websocket", "json")
        try:
            reply = await peer.hello()
            if reply[0] != WELCOME:
                problems.append(f"HELLO over WebSocket got {short(reply)}")
        finally:
            await peer.close()
    except (PeerClosed, asyncio.TimeoutError, OSError) as e:
        log = router.log_path.read_text(errors="replace").splitlines()
        panic = [" ".join(log[i:i + 2]) for i, line in enumerate(log) if "panicked" in line]
        problems.append(f"with limits.max_message_size = {limit}, a WebSocket client's HELLO "
                        f"got no WELCOME: {e!r}; router log: {panic[:1] or 'see below'}")
    await finish(router, bystander, problems)


# ------------------------------------------------------------------------------------------------
# WebSocket framing (RFC 6455), spoken byte by byte
# ------------------------------------------------------------------------------------------------


def ws_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0,
             mask: bool = True) -> bytes:
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, (0x80 if mask else 0) | n])
    elif n < 65536:
        head = bytes([first, (0x80 if mask else 0) | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, (0x80 if mask else 0) | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def ws_upgrade(reader, writer, serializer: str) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
         f"Sec-WebSocket-Protocol: {WS_SUBPROTOCOLS[serializer]}\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), RECV_TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head


async def ws_read_frame(reader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


def ws_messages(serializer: str, data: bytes) -> list:
    """The WAMP messages in the data frames the router sent (close frames left out)."""
    out = []
    while len(data) >= 2:
        opcode, n, at = data[0] & 0x0F, data[1] & 0x7F, 2
        if n == 126:
            n, at = struct.unpack(">H", data[2:4])[0], 4
        elif n == 127:
            n, at = struct.unpack(">Q", data[2:10])[0], 10
        body, data = data[at:at + n], data[at + n:]
        if opcode in (0x1, 0x2):
            try:
                out.append(decode(serializer, body))
            except Exception:
                out.append(("undecodable", body[:60]))
    return out


WS_VIOLATIONS = {
    "unmasked-client-frame": lambda msg: ws_frame(0x1, msg, mask=False),
    "rsv1-without-extension": lambda msg: ws_frame(0x1, msg, rsv=4),
    "rsv2": lambda msg: ws_frame(0x1, msg, rsv=2),
    "rsv3": lambda msg: ws_frame(0x1, msg, rsv=1),
    "reserved-data-opcode-3": lambda msg: ws_frame(0x3, msg),
    "reserved-control-opcode-b": lambda msg: ws_frame(0xB, b""),
    "continuation-without-start": lambda msg: ws_frame(0x0, msg),
    "fragmented-ping": lambda msg: ws_frame(0x9, b"ping", fin=False),
    "control-frame-over-125": lambda msg: ws_frame(0x9, b"p" * 126),
    "new-message-inside-fragmented-one": lambda msg: (ws_frame(0x1, msg[:3], fin=False)
                                                      + ws_frame(0x1, msg[3:])),
    "length-2^63": lambda msg: bytes([0x81, 0xFF]) + b"\x7f" + b"\xff" * 7 + os.urandom(4),
}


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
@pytest.mark.parametrize("violation", list(WS_VIOLATIONS))
@bystander_on("rawsocket")
async def test_websocket_framing_violation_fails_the_connection(
    router, bystander, serializer, violation
):
    """RFC 6455 5.1/5.2/5.4/5.5/7.4: such a frame makes the server fail the WebSocket connection."""
    hello = encode(serializer, [HELLO, REALM, {"roles": RAW_CLIENT_ROLES}])
    hello = hello.encode() if isinstance(hello, str) else hello
    opcode = 0x1 if serializer == "json" else 0x2
    sub = encode(serializer, [SUBSCRIBE, 1, {}, "com.hostile.topic"])
    sub = sub.encode() if isinstance(sub, str) else sub
    problems = []
    async with tcp(router) as (reader, writer):
        await ws_upgrade(reader, writer, serializer)
        writer.write(ws_frame(opcode, hello))
        await writer.drain()
        kind, body = await asyncio.wait_for(ws_read_frame(reader), RECV_TIMEOUT)
        assert decode(serializer, body)[0] == WELCOME
        frame = WS_VIOLATIONS[violation](sub)
        if serializer != "json" and frame[0] & 0x0F == 0x1:
            frame = bytes([frame[0] & 0xF0 | 0x2]) + frame[1:]
        writer.write(frame)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        closed, data = await read_until_eof(reader, REPLY_TIMEOUT)
    answers = ws_messages(serializer, data)
    if not closed:
        problems.append(f"{violation}: the connection was still open after {REPLY_TIMEOUT}s "
                        f"(router sent {short(answers)})")
    elif any(not (isinstance(m, list) and m[:1] == [ABORT]) for m in answers):
        problems.append(f"{violation}: the router answered {short(answers)} before closing")
    await finish(router, bystander, problems, "websocket", serializer)


# ------------------------------------------------------------------------------------------------
# Slow and idle connections (slowloris)
# ------------------------------------------------------------------------------------------------

SLOW_CASES = ["silent", "half-http-request", "trickled-http-headers", "half-rawsocket-handshake",
              "websocket-without-hello", "rawsocket-without-hello", "http-keep-alive-idle"]


@pytest.mark.router_config(SHORT_HANDSHAKE)
@pytest.mark.parametrize("case", SLOW_CASES)
async def test_slow_client_is_closed_within_the_handshake_timeout(router, bystander, case):
    """limits.handshake_timeout_secs: "Time from accept to WELCOME; slower connections are
    closed." (docs/configuration.md). Configured here to 1 s; allowed: up to 1 s more."""
    allowed = HANDSHAKE_TIMEOUT + 1.5
    async with tcp(router) as (reader, writer):
        started = time.monotonic()
        trickle = None
        if case == "half-http-request":
            writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        elif case == "trickled-http-headers":
            async def drip():
                request = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           + b"X-Slow: " + b"a" * 200)
                for i in range(len(request)):
                    writer.write(request[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.1)
            trickle = asyncio.create_task(drip())
        elif case == "half-rawsocket-handshake":
            writer.write(b"\x7f\xf1")
        elif case == "websocket-without-hello":
            await ws_upgrade(reader, writer, "json")
        elif case == "rawsocket-without-hello":
            writer.write(rawsocket_handshake_request(1))
            await writer.drain()
            await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
        elif case == "http-keep-alive-idle":
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.readuntil(b"ok\n"), RECV_TIMEOUT)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        closed, data = await read_until_eof(reader, allowed + 1)
        elapsed = time.monotonic() - started
        if trickle is not None:
            trickle.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await trickle
    problems = []
    if not closed:
        problems.append(f"{case}: the connection was still open after {elapsed:.1f}s "
                        f"(handshake_timeout_secs = {HANDSHAKE_TIMEOUT:g})")
    elif elapsed > allowed:
        problems.append(f"{case}: closed only after {elapsed:.1f}s "
                        f"(handshake_timeout_secs = {HANDSHAKE_TIMEOUT:g})")
    await finish(router, bystander, problems, "websocket", "json")


# ------------------------------------------------------------------------------------------------
# Floods of connections
# ------------------------------------------------------------------------------------------------

FLOOD = 300


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("case", ["idle-tcp", "half-http-request", "rawsocket-handshake-only",
                                  "connect-and-reset"])
async def test_flood_of_connections_does_not_stop_normal_clients(router, bystander, case):
    """300 concurrent connections that do nothing useful; a normal client is served meanwhile."""
    baseline = open_fds(router.proc.pid)
    writers = []
    problems = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection(router.host, router.port)
        if case == "half-http-request":
            writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        elif case == "rawsocket-handshake-only":
            writer.write(rawsocket_handshake_request(2))
            await writer.drain()
            await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
        elif case == "connect-and-reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        writers.append(writer)

    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(one() for _ in range(FLOOD)), return_exceptions=True), 15)
        failed = [r for r in results if isinstance(r, BaseException)]
        if len(failed) > FLOOD // 10:
            problems.append(f"{len(failed)} of {FLOOD} flood connections failed: "
                            f"{short(failed[:3])}")
        # While the flood connections are open, normal clients on both transports are served.
        started = time.monotonic()
        for transport, serializer in [("websocket", "json"), ("rawsocket", "cbor")]:
            problems += await fresh_client_problems(router, transport, serializer)
        problems += await bystander.problems()
        if time.monotonic() - started > 5:
            problems.append(f"normal clients took {time.monotonic() - started:.1f}s during "
                            f"the flood")
    finally:
        for writer in writers:
            writer.transport.abort()
    # The router releases what the flood held.
    deadline = time.monotonic() + 5
    while router.is_running() and time.monotonic() < deadline:
        if open_fds(router.proc.pid) <= baseline + 10:
            break
        await asyncio.sleep(0.1)
    else:
        if router.is_running():
            problems.append(f"{case}: the router still holds {open_fds(router.proc.pid)} file "
                            f"descriptors 5s after the flood closed (baseline {baseline})")
    await finish(router, bystander, problems, "websocket", "msgpack")
