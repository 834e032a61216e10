"""The Advanced Profile end to end (spec: advanced/rpc_*.md, pubsub_*.md,
payload_passthru_mode.md, transport_batched_websocket.md).

Autobahn|Python drives what it can express (progressive results, cancel, call timeout, shared and
pattern registrations, pattern subscriptions, black/white listing, retained events, identities
disclosed by realm policy). Hand-written peers (RawPeer) send what it cannot: progressive call
invocations, the three cancel modes, sharded calls, revocation, rerouting, concurrency limits,
event history, payload passthru and batched WebSocket.

Checks that something is *not* delivered never sleep: the test makes the router send a later
message to the same peer (a "marker") and asserts that the marker is the next thing that peer
receives. The router handles each session's messages in order, so anything the router was going
to send because of an earlier message would have arrived first.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone

import cbor2
import msgpack
import pytest
import websockets
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, PublishOptions, RegisterOptions
from websockets.asyncio.client import connect as ws_connect

from junction_harness import (
    ABORT,
    CALL,
    ERROR,
    EVENT,
    INVOCATION,
    PUBLISH,
    PUBLISHED,
    RECV_TIMEOUT,
    REALM,
    RESULT,
    SUBSCRIBE,
    SUBSCRIBED,
    UNREGISTERED,
    UNSUBSCRIBED,
    WELCOME,
    YIELD,
    Collector,
    assert_error,
    json_binary,
    subscribe_collector,
)

CANCEL, INTERRUPT = 49, 69
CLIENT_ROLES = ("caller", "callee", "publisher", "subscriber")

# What WELCOME announces on a realm without event history (docs/features.md).
BROKER_FEATURES = {
    "publisher_exclusion",
    "publisher_identification",
    "subscriber_blackwhite_listing",
    "pattern_based_subscription",
    "event_retention",
    "subscription_revocation",
    "session_meta_api",
    "subscription_meta_api",
    "payload_passthru_mode",
}
DEALER_FEATURES = {
    "progressive_call_results",
    "progressive_call_invocations",
    "call_canceling",
    "call_timeout",
    "caller_identification",
    "pattern_based_registration",
    "shared_registration",
    "sharded_registration",
    "registration_revocation",
    "call_reroute",
    "session_meta_api",
    "registration_meta_api",
    "testament_meta_api",
    "payload_passthru_mode",
}

# A realm configured in a file: disclose_caller and disclose_publisher default to false there.
PLAIN_REALM_CONFIG = '[[realms]]\nname = "realm1"\n'

HISTORY_CONFIG = """
[[realms]]
name = "realm1"

[[realms.event_history]]
topic = "com.example.history"
match = "prefix"
limit = 4

[[realms]]
name = "realm2"
"""

TIMEOUT_CONFIG = """
[[realms]]
name = "realm1"
default_call_timeout_ms = 300
max_call_timeout_ms = 500
"""


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def hello_details(**features: dict) -> dict:
    """HELLO.Details announcing the four client roles; ``features`` maps a role to its features,
    for instance ``callee={"call_canceling": True}``."""
    return {"roles": {role: {"features": dict(features.get(role, {}))} for role in CLIENT_ROLES}}


async def raw_session(clients, transport: str = "websocket", serializer: str = "json",
                      realm: str = REALM, **features: dict):
    """A hand-written peer joined to ``realm`` announcing ``features``; returns (peer, session)."""
    peer = await clients.raw(transport, serializer)
    welcome = await peer.hello(realm, hello_details(**features))
    assert welcome[0] == WELCOME, f"expected WELCOME, got {welcome!r}"
    return peer, welcome[1]


async def expect(peer, kind: int, what: str) -> list:
    """The peer's next message, which must be of type ``kind``."""
    message = await peer.recv()
    assert message[0] == kind, f"{what}: expected message type {kind}, got {message!r}"
    return message


async def recv_or_explain(peer, what: str, other, other_name: str) -> list:
    """``peer``'s next message; if none comes, the failure also shows what ``other`` was sent
    meanwhile (where the router put the message instead)."""
    try:
        return await peer.recv()
    except asyncio.TimeoutError:
        try:
            elsewhere = f"{other_name} was sent {await other.recv(timeout=1.0)!r}"
        except asyncio.TimeoutError:
            elsewhere = f"{other_name} was sent nothing either"
        raise AssertionError(f"{what}: no message within {RECV_TIMEOUT}s; {elsewhere}") from None


async def send_call(peer, procedure: str, options: dict | None = None, args: list | None = None,
                    kwargs: dict | None = None) -> int:
    """Sends a CALL with the next request id and returns that id."""
    request = peer.next_request_id()
    message = [CALL, request, options or {}, procedure]
    if args is not None or kwargs is not None:
        message.append(args or [])
    if kwargs is not None:
        message.append(kwargs)
    await peer.send(message)
    return request


async def call_result(peer, procedure: str, options: dict | None = None,
                      args: list | None = None, kwargs: dict | None = None) -> list:
    """A CALL whose next reply must be its RESULT; returns the RESULT."""
    request = await send_call(peer, procedure, options, args, kwargs)
    reply = await peer.recv()
    assert reply[:2] == [RESULT, request], f"CALL {procedure}: expected RESULT, got {reply!r}"
    return reply


async def call_error(peer, procedure: str, options: dict | None = None,
                     args: list | None = None, kwargs: dict | None = None) -> list:
    """A CALL whose next reply must be an ERROR for it; returns the ERROR."""
    request = await send_call(peer, procedure, options, args, kwargs)
    reply = await peer.recv()
    assert reply[:3] == [ERROR, CALL, request], f"CALL {procedure}: expected ERROR, got {reply!r}"
    return reply


async def publish_acknowledged(peer, topic: str, options: dict | None = None,
                               args: list | None = None, kwargs: dict | None = None) -> int:
    """A PUBLISH with acknowledge; returns the publication id."""
    request = peer.next_request_id()
    message = [PUBLISH, request, {**(options or {}), "acknowledge": True}, topic]
    if args is not None or kwargs is not None:
        message.append(args or [])
    if kwargs is not None:
        message.append(kwargs)
    await peer.send(message)
    reply = await peer.recv()
    assert reply[:2] == [PUBLISHED, request], f"PUBLISH {topic}: {reply!r}"
    return reply[2]


async def answer(callee, invocation: list, *args) -> None:
    """The callee's YIELD for ``invocation`` with ``args``."""
    await callee.send([YIELD, invocation[1], {}, list(args)])


async def call_autobahn(session, procedure: str, *args, **kwargs):
    return await asyncio.wait_for(session.call(procedure, *args, **kwargs), RECV_TIMEOUT)


async def autobahn_error(session, procedure: str, *args, **kwargs) -> ApplicationError:
    """The ApplicationError an Autobahn call fails with; fails the test if it succeeds."""
    try:
        result = await call_autobahn(session, procedure, *args, **kwargs)
    except ApplicationError as e:
        return e
    pytest.fail(f"call to {procedure} succeeded with {result!r}")


def session_of(session):
    """The SessionDetails (session, authid, authrole) of a joined Autobahn session."""
    return session.joined.result()


def parse_rfc3339(value: str) -> datetime:
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, f"timestamp without time zone: {value!r}"
    return parsed


class PendingCall:
    """A caller and a callee (hand-written) with one call in flight, plus markers that prove
    what the router did *not* send.

    The callee registers ``com.example.slow`` and ``com.example.marker``; the caller subscribes
    to ``com.example.marker``.
    """

    def __init__(self, caller, callee, slow_registration: int, marker_registration: int):
        self.caller = caller
        self.callee = callee
        self.slow_registration = slow_registration
        self.marker_registration = marker_registration
        self.request: int | None = None
        self.invocation: list | None = None

    @classmethod
    async def open(cls, clients, callee_features: dict, caller_features: dict | None = None):
        callee, _ = await raw_session(clients, "websocket", "json", callee=callee_features)
        caller, _ = await raw_session(clients, "rawsocket", "json",
                                      caller=caller_features or {"call_canceling": True})
        slow = await callee.register("com.example.slow")
        marker = await callee.register("com.example.marker")
        await caller.subscribe("com.example.marker")
        return cls(caller, callee, slow, marker)

    async def start(self, options: dict | None = None, args: list | None = None) -> list:
        """CALL com.example.slow; returns the callee's INVOCATION."""
        self.request = await send_call(self.caller, "com.example.slow", options, args or ["work"])
        self.invocation = await expect(self.callee, INVOCATION, "callee of com.example.slow")
        assert self.invocation[2] == self.slow_registration, self.invocation
        return self.invocation

    async def cancel(self, mode: str | None) -> None:
        await self.caller.send([CANCEL, self.request, {} if mode is None else {"mode": mode}])

    async def caller_gets_error(self, error: str) -> list:
        reply = await self.caller.recv()
        assert_error(reply, CALL, self.request, error)
        return reply

    async def callee_gets_nothing_more(self) -> None:
        """The caller calls com.example.marker: the callee's next message must be that
        INVOCATION (no INTERRUPT before it), and the caller's next message its RESULT (no
        RESULT or ERROR of the slow call before it)."""
        request = await send_call(self.caller, "com.example.marker", {}, ["marker"])
        invocation = await self.callee.recv()
        assert invocation[0] == INVOCATION and invocation[2] == self.marker_registration, (
            f"callee: expected the marker INVOCATION, got {invocation!r}"
        )
        await answer(self.callee, invocation, "marker done")
        reply = await self.caller.recv()
        assert reply[:2] == [RESULT, request], f"caller: expected the marker RESULT, got {reply!r}"

    async def caller_gets_nothing_more(self) -> None:
        """The callee publishes to com.example.marker: the caller's next message must be that
        EVENT, so nothing the callee sent before it was forwarded to the caller."""
        await self.callee.send([PUBLISH, self.callee.next_request_id(), {}, "com.example.marker",
                                ["marker"]])
        message = await self.caller.recv()
        assert message[0] == EVENT and message[4] == ["marker"], (
            f"caller: expected the marker EVENT, got {message!r}"
        )


# ------------------------------------------------------------------------------------------------
# Feature announcement
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "msgpack")])
async def test_welcome_announces_the_advanced_profile_features(clients, transport, serializer):
    peer = await clients.raw(transport, serializer)

    welcome = await peer.hello()

    assert welcome[0] == WELCOME, welcome
    roles = welcome[2]["roles"]
    assert set(roles) == {"broker", "dealer"}, roles
    broker, dealer = roles["broker"]["features"], roles["dealer"]["features"]
    assert all(value is True for value in [*broker.values(), *dealer.values()]), roles
    assert set(broker) == BROKER_FEATURES, (
        f"missing {BROKER_FEATURES - set(broker)}, unexpected {set(broker) - BROKER_FEATURES}"
    )
    assert set(dealer) == DEALER_FEATURES, (
        f"missing {DEALER_FEATURES - set(dealer)}, unexpected {set(dealer) - DEALER_FEATURES}"
    )


@pytest.mark.router_config(HISTORY_CONFIG)
async def test_welcome_announces_event_history_only_on_realms_that_keep_history(clients):
    with_history = await clients.raw()
    without_history = await clients.raw()

    first = await with_history.hello("realm1")
    second = await without_history.hello("realm2")

    assert first[0] == WELCOME and second[0] == WELCOME, (first, second)
    assert first[2]["roles"]["broker"]["features"].get("event_history") is True, first
    assert "event_history" not in second[2]["roles"]["broker"]["features"], second


# ------------------------------------------------------------------------------------------------
# Progressive call results
# ------------------------------------------------------------------------------------------------


async def test_autobahn_progressive_results_arrive_in_order_before_the_final_result(clients):
    callee = await clients.autobahn("websocket", "json")
    caller = await clients.autobahn("rawsocket", "cbor")

    def countdown(start, details=None):
        # details.progress is only set when INVOCATION.Details.receive_progress is true.
        assert details.progress is not None, "INVOCATION did not carry receive_progress"
        for n in range(start, 0, -1):
            details.progress(n, remaining=n)
        return "liftoff"

    await callee.register(countdown, "com.example.countdown",
                          options=RegisterOptions(details_arg="details"))
    progress = Collector()

    result = await call_autobahn(
        caller, "com.example.countdown", 3,
        options=CallOptions(on_progress=lambda *a, **kw: progress.add((a, kw))),
    )

    assert progress.items == [((3,), {"remaining": 3}), ((2,), {"remaining": 2}),
                              ((1,), {"remaining": 1})]
    assert result == "liftoff"


async def test_callee_is_not_offered_progress_when_the_caller_did_not_ask_for_it(clients):
    callee = await clients.autobahn("rawsocket", "msgpack")
    caller = await clients.autobahn("websocket", "json")
    offered = []

    def probe(details=None):
        offered.append(details.progress is not None)
        return "done"

    await callee.register(probe, "com.example.probe",
                          options=RegisterOptions(details_arg="details"))

    assert await call_autobahn(caller, "com.example.probe") == "done"
    assert offered == [False]


async def test_progressive_result_frames_carry_progress_flag_and_final_result_does_not(clients):
    callee, _ = await raw_session(clients, callee={"progressive_call_results": True})
    caller, _ = await raw_session(clients, "rawsocket", "cbor",
                                  caller={"progressive_call_results": True})
    await callee.register("com.example.stream")

    request = await send_call(caller, "com.example.stream", {"receive_progress": True}, [2])
    invocation = await expect(callee, INVOCATION, "callee")
    assert invocation[3].get("receive_progress") is True, invocation
    for chunk in ("a", "b"):
        await callee.send([YIELD, invocation[1], {"progress": True}, [chunk]])
    await answer(callee, invocation, "end")

    received = [await caller.recv() for _ in range(3)]
    assert [m[:2] for m in received] == [[RESULT, request]] * 3, received
    assert [m[3] for m in received] == [["a"], ["b"], ["end"]], received
    assert [m[2].get("progress") for m in received[:2]] == [True, True], received
    assert not received[2][2].get("progress"), received


# ------------------------------------------------------------------------------------------------
# Progressive call invocations
# ------------------------------------------------------------------------------------------------

PROGRESSIVE_CALLEE = {"progressive_call_invocations": True, "call_canceling": True}


async def test_progressive_call_invocations_reach_the_callee_under_one_request_id(clients):
    callee, _ = await raw_session(clients, callee=PROGRESSIVE_CALLEE)
    caller, _ = await raw_session(clients, "rawsocket", "msgpack",
                                  caller={"progressive_call_invocations": True})
    registration = await callee.register("com.example.upload")

    request = caller.next_request_id()
    invocations = []
    for options, chunk in [({"progress": True}, "chunk-1"), ({"progress": True}, "chunk-2"),
                           ({}, "chunk-3")]:
        await caller.send([CALL, request, options, "com.example.upload", [chunk]])
        invocations.append(await expect(callee, INVOCATION, f"callee, {chunk}"))

    assert len({inv[1] for inv in invocations}) == 1, (
        f"chunks of one call must share one INVOCATION request id: {invocations!r}"
    )
    assert all(inv[2] == registration for inv in invocations), invocations
    assert [inv[4] for inv in invocations] == [["chunk-1"], ["chunk-2"], ["chunk-3"]]
    assert [inv[3].get("progress") for inv in invocations[:2]] == [True, True], invocations
    assert not invocations[2][3].get("progress"), invocations[2]

    await answer(callee, invocations[-1], "3 chunks")
    reply = await caller.recv()
    assert reply[:2] == [RESULT, request] and reply[3] == ["3 chunks"], reply


async def test_progressive_call_invocations_stay_with_the_first_callee_of_a_shared_registration(
    clients,
):
    first, _ = await raw_session(clients, callee=PROGRESSIVE_CALLEE)
    second, _ = await raw_session(clients, callee=PROGRESSIVE_CALLEE)
    caller, _ = await raw_session(clients, caller={"progressive_call_invocations": True})
    await first.register("com.example.shared_upload", {"invoke": "roundrobin"})
    await second.register("com.example.shared_upload", {"invoke": "roundrobin"})

    request = caller.next_request_id()
    await caller.send([CALL, request, {"progress": True}, "com.example.shared_upload", [1]])
    opening = await expect(first, INVOCATION, "first callee (round robin starts with it)")
    await caller.send([CALL, request, {"progress": True}, "com.example.shared_upload", [2]])
    await caller.send([CALL, request, {}, "com.example.shared_upload", [3]])
    rest = [await expect(first, INVOCATION, "first callee, later chunk") for _ in range(2)]
    assert [m[1] for m in rest] == [opening[1]] * 2, rest
    await answer(first, rest[-1], "ok")
    assert (await caller.recv())[:2] == [RESULT, request]

    # The second callee got none of the chunks: the next ordinary call is the first thing it sees.
    other = await send_call(caller, "com.example.shared_upload", {}, ["plain"])
    invocation = await expect(second, INVOCATION, "second callee")
    assert invocation[4] == ["plain"], invocation
    await answer(second, invocation, "plain ok")
    assert (await caller.recv())[:2] == [RESULT, other]


@pytest.mark.parametrize("callee_features", [
    {},
    {"progressive_call_invocations": True},  # without call_canceling it does not count
], ids=["callee-without-feature", "callee-without-call-canceling"])
async def test_progressive_call_to_callee_without_the_feature_fails_with_feature_not_supported(
    clients, callee_features
):
    callee, _ = await raw_session(clients, callee=callee_features)
    caller, _ = await raw_session(clients, caller={"progressive_call_invocations": True})
    await callee.register("com.example.no_chunks")

    request = await send_call(caller, "com.example.no_chunks", {"progress": True}, ["chunk"])

    reply = await recv_or_explain(caller, "caller", callee, "the callee")
    assert_error(reply, CALL, request, "wamp.error.feature_not_supported")
    # and the callee was never invoked: a later plain call is its first INVOCATION
    request = await send_call(caller, "com.example.no_chunks", {}, ["plain"])
    invocation = await expect(callee, INVOCATION, "callee")
    assert invocation[4] == ["plain"], invocation
    await answer(callee, invocation, "ok")
    assert (await caller.recv())[:2] == [RESULT, request]


async def test_progressive_call_from_caller_that_did_not_announce_the_feature_is_aborted(clients):
    # Spec: a CALL with progress=true from a Caller that did not announce
    # progressive_call_invocations is a protocol error; the session is aborted.
    callee, _ = await raw_session(clients, callee=PROGRESSIVE_CALLEE)
    caller, _ = await raw_session(clients, caller={})
    await callee.register("com.example.upload")

    await send_call(caller, "com.example.upload", {"progress": True}, ["chunk"])

    reply = await recv_or_explain(caller, "caller", callee, "the callee")
    assert reply[0] == ABORT and reply[2] == "wamp.error.protocol_violation", reply


# ------------------------------------------------------------------------------------------------
# Call canceling
# ------------------------------------------------------------------------------------------------


async def test_autobahn_cancel_interrupts_the_callee_and_fails_the_call(clients):
    # Autobahn|Python's cancel() sends CANCEL without a mode; Junction then uses killnowait.
    callee = await clients.autobahn("websocket", "json")
    caller = await clients.autobahn("rawsocket", "msgpack")
    loop = asyncio.get_running_loop()
    started, interrupted = loop.create_future(), loop.create_future()

    async def slow():
        started.set_result(None)
        try:
            await loop.create_future()  # never resolved: only an INTERRUPT ends it
        except asyncio.CancelledError:
            interrupted.set_result(None)
            raise

    await callee.register(slow, "com.example.slow")
    await callee.register(lambda: "still here", "com.example.ping")
    call = caller.call("com.example.slow")
    await asyncio.wait_for(started, RECV_TIMEOUT)

    call.cancel()

    await asyncio.wait_for(asyncio.shield(interrupted), RECV_TIMEOUT)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, RECV_TIMEOUT)
    assert await call_autobahn(caller, "com.example.ping") == "still here"


async def test_cancel_in_skip_mode_fails_the_call_at_once_without_interrupting_the_callee(clients):
    pending = await PendingCall.open(clients, {"call_canceling": True})
    invocation = await pending.start()

    await pending.cancel("skip")

    await pending.caller_gets_error("wamp.error.canceled")
    await pending.callee_gets_nothing_more()
    # The callee's late answer is discarded.
    await answer(pending.callee, invocation, "too late")
    await pending.caller_gets_nothing_more()


async def test_cancel_in_kill_mode_interrupts_the_callee_and_waits_for_its_error(clients):
    pending = await PendingCall.open(clients, {"call_canceling": True})
    invocation = await pending.start()

    await pending.cancel("kill")

    interrupt = await expect(pending.callee, INTERRUPT, "callee")
    assert interrupt[1] == invocation[1], interrupt
    assert interrupt[2].get("mode") == "kill", interrupt
    # No ERROR for the caller until the callee has answered.
    await pending.callee_gets_nothing_more()
    await pending.callee.send([ERROR, INVOCATION, invocation[1], {}, "wamp.error.canceled"])
    await pending.caller_gets_error("wamp.error.canceled")


async def test_cancel_in_kill_mode_delivers_the_result_when_the_callee_finishes_anyway(clients):
    pending = await PendingCall.open(clients, {"call_canceling": True})
    invocation = await pending.start()

    await pending.cancel("kill")
    await expect(pending.callee, INTERRUPT, "callee")
    await answer(pending.callee, invocation, "finished first")

    reply = await pending.caller.recv()
    assert reply[:2] == [RESULT, pending.request] and reply[3] == ["finished first"], reply


async def test_cancel_in_killnowait_mode_fails_the_call_at_once_and_interrupts_the_callee(clients):
    pending = await PendingCall.open(clients, {"call_canceling": True})
    invocation = await pending.start()

    await pending.cancel("killnowait")

    await pending.caller_gets_error("wamp.error.canceled")
    interrupt = await expect(pending.callee, INTERRUPT, "callee")
    assert interrupt[1] == invocation[1], interrupt
    assert interrupt[2].get("mode") == "killnowait", interrupt
    # Whatever the callee answers afterwards is dropped.
    await pending.callee.send([ERROR, INVOCATION, invocation[1], {}, "wamp.error.canceled"])
    await answer(pending.callee, invocation, "too late")
    await pending.caller_gets_nothing_more()


@pytest.mark.parametrize("mode", ["kill", "killnowait"])
async def test_cancel_of_call_to_callee_without_call_canceling_behaves_as_skip(clients, mode):
    pending = await PendingCall.open(clients, {})
    invocation = await pending.start()

    await pending.cancel(mode)

    await pending.caller_gets_error("wamp.error.canceled")
    await pending.callee_gets_nothing_more()
    await answer(pending.callee, invocation, "too late")
    await pending.caller_gets_nothing_more()


# ------------------------------------------------------------------------------------------------
# Call timeout
# ------------------------------------------------------------------------------------------------


async def test_autobahn_call_timeout_is_enforced_by_the_router(clients):
    callee = await clients.autobahn("rawsocket", "cbor")
    caller = await clients.autobahn("websocket", "json")
    loop = asyncio.get_running_loop()
    interrupted = loop.create_future()

    async def never_answers():
        try:
            await loop.create_future()
        except asyncio.CancelledError:
            interrupted.set_result(None)
            raise

    await callee.register(never_answers, "com.example.never")
    started = time.monotonic()

    error = await autobahn_error(caller, "com.example.never", options=CallOptions(timeout=300))

    elapsed = time.monotonic() - started
    assert error.error == "wamp.error.timeout"
    assert elapsed >= 0.29, f"timed out after {elapsed:.3f}s, before the 300 ms asked for"
    # Autobahn|Python announces call_canceling, so the router interrupts its handler.
    await asyncio.wait_for(asyncio.shield(interrupted), RECV_TIMEOUT)


async def test_call_timeout_interrupts_a_callee_with_call_canceling_in_killnowait_mode(clients):
    pending = await PendingCall.open(clients, {"call_canceling": True})
    started = time.monotonic()

    invocation = await pending.start({"timeout": 200})

    assert invocation[3].get("timeout") == 200, invocation
    await pending.caller_gets_error("wamp.error.timeout")
    assert time.monotonic() - started >= 0.19
    interrupt = await expect(pending.callee, INTERRUPT, "callee")
    assert interrupt[1] == invocation[1], interrupt
    assert interrupt[2].get("mode") == "killnowait", interrupt
    assert interrupt[2].get("reason") == "wamp.error.timeout", interrupt
    # A late answer is dropped.
    await answer(pending.callee, invocation, "too late")
    await pending.caller_gets_nothing_more()


async def test_call_timeout_to_callee_without_call_canceling_fails_call_without_interrupt(clients):
    pending = await PendingCall.open(clients, {})
    invocation = await pending.start({"timeout": 150})

    await pending.caller_gets_error("wamp.error.timeout")

    await pending.callee_gets_nothing_more()
    await answer(pending.callee, invocation, "too late")
    await pending.caller_gets_nothing_more()


async def test_call_answered_in_time_is_not_timed_out_later(clients):
    pending = await PendingCall.open(clients, {"call_canceling": True})
    quick = await pending.start({"timeout": 100}, ["quick"])
    await answer(pending.callee, quick, "in time")
    reply = await pending.caller.recv()
    assert reply[:2] == [RESULT, pending.request], reply
    quick_request = pending.request

    # A second call with a longer timeout is left unanswered: once it has timed out, the first
    # call's timer would have fired long ago if it were still running.
    slow = await pending.start({"timeout": 400}, ["slow"])
    await pending.caller_gets_error("wamp.error.timeout")
    interrupt = await expect(pending.callee, INTERRUPT, "callee")
    assert interrupt[1] == slow[1], (
        f"INTERRUPT for request {interrupt[1]}; the quick call ({quick[1]}, caller request "
        f"{quick_request}) had already been answered"
    )
    await pending.callee_gets_nothing_more()


@pytest.mark.router_config(TIMEOUT_CONFIG)
async def test_realm_default_call_timeout_applies_to_calls_without_timeout(clients):
    pending = await PendingCall.open(clients, {"call_canceling": True})
    started = time.monotonic()

    invocation = await pending.start()

    assert invocation[3].get("timeout") == 300, invocation
    await pending.caller_gets_error("wamp.error.timeout")
    assert time.monotonic() - started >= 0.29


@pytest.mark.router_config(TIMEOUT_CONFIG)
async def test_realm_max_call_timeout_caps_a_longer_timeout(clients):
    pending = await PendingCall.open(clients, {"call_canceling": True})
    started = time.monotonic()

    invocation = await pending.start({"timeout": 60000})

    assert invocation[3].get("timeout") == 500, invocation
    await pending.caller_gets_error("wamp.error.timeout")
    elapsed = time.monotonic() - started
    assert 0.49 <= elapsed < RECV_TIMEOUT, elapsed


# ------------------------------------------------------------------------------------------------
# Caller and publisher identification
# ------------------------------------------------------------------------------------------------


async def test_default_realm_discloses_caller_to_autobahn_callee(clients):
    callee = await clients.autobahn("websocket", "cbor")
    caller = await clients.autobahn("rawsocket", "json")
    seen = []

    def who(details=None):
        seen.append((details.caller, details.caller_authid, details.caller_authrole))
        return "ok"

    await callee.register(who, "com.example.who", options=RegisterOptions(details_arg="details"))
    await call_autobahn(caller, "com.example.who")

    me = session_of(caller)
    assert seen == [(me.session, me.authid, me.authrole)]


async def test_default_realm_discloses_publisher_to_autobahn_subscriber(clients):
    subscriber = await clients.autobahn("rawsocket", "msgpack")
    publisher = await clients.autobahn("websocket", "json")
    events, _ = await subscribe_collector(subscriber, "com.example.news")

    publisher.publish("com.example.news", "hello")  # no acknowledge: publish() returns None

    [(args, _, details)] = await events.wait_for(1)
    me = session_of(publisher)
    assert args == ("hello",)
    assert (details.publisher, details.publisher_authid, details.publisher_authrole) == (
        me.session, me.authid, me.authrole)


@pytest.mark.router_config(PLAIN_REALM_CONFIG)
async def test_realm_without_disclosure_reveals_caller_only_on_request(clients):
    callee, _ = await raw_session(clients, callee={"caller_identification": True})
    asking, _ = await raw_session(clients, callee={"caller_identification": True})
    caller, caller_id = await raw_session(clients, "rawsocket", "cbor",
                                          caller={"caller_identification": True})
    await callee.register("com.example.anonymous_call")
    await asking.register("com.example.curious", {"disclose_caller": True})

    identities = []
    for procedure, options, peer in [
        ("com.example.anonymous_call", {}, callee),
        ("com.example.anonymous_call", {"disclose_me": True}, callee),
        ("com.example.curious", {}, asking),
    ]:
        request = await send_call(caller, procedure, options, [])
        invocation = await expect(peer, INVOCATION, procedure)
        details = invocation[3]
        identities.append((details.get("caller"), details.get("caller_authid"),
                           details.get("caller_authrole")))
        await answer(peer, invocation)
        assert (await caller.recv())[:2] == [RESULT, request]

    me = (caller_id, f"anonymous-{caller_id}", "anonymous")
    assert identities == [(None, None, None), me, me], identities


@pytest.mark.router_config(PLAIN_REALM_CONFIG)
async def test_realm_without_disclosure_reveals_publisher_only_on_request(clients):
    subscriber, _ = await raw_session(clients, "rawsocket", "msgpack",
                                      subscriber={"publisher_identification": True})
    publisher, publisher_id = await raw_session(clients,
                                                publisher={"publisher_identification": True})
    await subscriber.subscribe("com.example.news")

    await publish_acknowledged(publisher, "com.example.news", {}, ["quiet"])
    await publish_acknowledged(publisher, "com.example.news", {"disclose_me": True}, ["loud"])

    quiet = await expect(subscriber, EVENT, "subscriber")
    loud = await expect(subscriber, EVENT, "subscriber")
    assert quiet[4] == ["quiet"] and "publisher" not in quiet[3], quiet
    assert loud[4] == ["loud"], loud
    assert (loud[3].get("publisher"), loud[3].get("publisher_authid"),
            loud[3].get("publisher_authrole")) == (publisher_id, f"anonymous-{publisher_id}",
                                                   "anonymous"), loud


# ------------------------------------------------------------------------------------------------
# Shared registrations
# ------------------------------------------------------------------------------------------------


async def register_named(session, name: str, procedure: str, **options):
    """Registers a procedure on ``session`` that answers with ``name``; returns the
    registration."""
    return await asyncio.wait_for(
        session.register(lambda: name, procedure, options=RegisterOptions(**options)),
        RECV_TIMEOUT,
    )


async def test_roundrobin_registration_calls_callees_in_turn_under_one_registration_id(clients):
    callees = [await clients.autobahn(t, s) for t, s in
               [("websocket", "json"), ("rawsocket", "msgpack"), ("websocket", "cbor")]]
    caller = await clients.autobahn()
    registrations = [await register_named(c, name, "com.example.rr", invoke="roundrobin")
                     for c, name in zip(callees, "abc")]

    answers = [await call_autobahn(caller, "com.example.rr") for _ in range(7)]

    assert answers == list("abcabca")
    assert len({r.id for r in registrations}) == 1, [r.id for r in registrations]


@pytest.mark.parametrize("policy,expected,after_leaving", [
    ("first", "a", "b"),
    ("last", "c", "b"),
])
async def test_first_and_last_registration_call_one_callee_and_fall_back_when_it_leaves(
    clients, policy, expected, after_leaving
):
    callees = {name: await clients.autobahn() for name in "abc"}
    caller = await clients.autobahn("rawsocket", "json")
    for name, session in callees.items():
        await register_named(session, name, "com.example.standby", invoke=policy)

    answers = [await call_autobahn(caller, "com.example.standby") for _ in range(3)]
    assert answers == [expected] * 3

    await callees[expected].close()
    assert await call_autobahn(caller, "com.example.standby") == after_leaving


async def test_random_registration_only_calls_registered_callees_and_uses_each(clients):
    callees = [await clients.autobahn() for _ in range(2)]
    caller = await clients.autobahn()
    for session, name in zip(callees, "ab"):
        await register_named(session, name, "com.example.dice", invoke="random")

    answers = [await call_autobahn(caller, "com.example.dice") for _ in range(64)]

    # Each of 64 calls picks one of two callees at random: both appear unless the router is
    # not random (probability 2**-63 otherwise).
    assert set(answers) == {"a", "b"}, answers


async def test_second_registration_of_single_procedure_fails_with_procedure_already_exists(clients):
    first = await clients.autobahn()
    second = await clients.autobahn("rawsocket", "cbor")
    await register_named(first, "a", "com.example.solo")

    with pytest.raises(ApplicationError) as excinfo:
        await register_named(second, "b", "com.example.solo", invoke="roundrobin")

    assert excinfo.value.error == "wamp.error.procedure_already_exists"


async def test_registration_with_a_different_invoke_policy_is_refused_with_the_reason(clients):
    first = await clients.autobahn()
    second = await clients.autobahn()
    await register_named(first, "a", "com.example.policy", invoke="roundrobin")

    with pytest.raises(ApplicationError) as excinfo:
        await register_named(second, "b", "com.example.policy", invoke="first")

    assert excinfo.value.error == "wamp.error.procedure_already_exists"
    message = " ".join(str(a) for a in excinfo.value.args)
    assert "roundrobin" in message and "first" in message, (
        f"the error should say which policies clash: {excinfo.value.args!r}"
    )


# ------------------------------------------------------------------------------------------------
# Pattern-based registrations and subscriptions
# ------------------------------------------------------------------------------------------------


async def test_pattern_registrations_route_by_precedence_and_tell_the_called_procedure(clients):
    callee = await clients.autobahn("rawsocket", "msgpack")
    caller = await clients.autobahn("websocket", "json")

    def endpoint(name):
        def handler(details=None):
            return [name, details.procedure]
        return handler

    for name, uri, match in [
        ("exact", "com.example.tree.leaf.one", None),
        ("short prefix", "com.example.tree", "prefix"),
        ("long prefix", "com.example.tree.leaf", "prefix"),
        ("narrow wildcard", "com.example..one", "wildcard"),
        ("wide wildcard", "com...one", "wildcard"),
    ]:
        await callee.register(endpoint(name), uri,
                              options=RegisterOptions(match=match, details_arg="details"))

    routed = {uri: await call_autobahn(caller, uri) for uri in [
        "com.example.tree.leaf.one",
        "com.example.tree.leaf.two",
        "com.example.tree.branch",
        "com.example.forest.one",
        "com.acme.forest.one",
    ]}

    assert routed["com.example.tree.leaf.one"][0] == "exact"
    assert routed["com.example.tree.leaf.two"] == ["long prefix", "com.example.tree.leaf.two"]
    assert routed["com.example.tree.branch"] == ["short prefix", "com.example.tree.branch"]
    assert routed["com.example.forest.one"] == ["narrow wildcard", "com.example.forest.one"]
    assert routed["com.acme.forest.one"] == ["wide wildcard", "com.acme.forest.one"]
    error = await autobahn_error(caller, "org.example.nothing")
    assert error.error == "wamp.error.no_such_procedure"


async def test_pattern_subscriptions_get_one_event_each_with_the_published_topic(clients):
    subscriber = await clients.autobahn("websocket", "cbor")
    publisher = await clients.autobahn("rawsocket", "json")
    exact, _ = await subscribe_collector(subscriber, "com.example.house.kitchen.temperature")
    prefix, _ = await subscribe_collector(subscriber, "com.example.house", match="prefix")
    wildcard, _ = await subscribe_collector(subscriber, "com.example.house..temperature",
                                            match="wildcard")

    for topic in ["com.example.house.kitchen.temperature", "com.example.house.kitchen.humidity",
                  "com.example.house.hall.temperature"]:
        await publisher.publish(topic, topic, options=PublishOptions(acknowledge=True))

    await wildcard.wait_for(2)
    await prefix.wait_for(3)
    assert [e[0] for e in exact.items] == [("com.example.house.kitchen.temperature",)]
    assert [e[2].topic for e in prefix.items] == [
        "com.example.house.kitchen.temperature", "com.example.house.kitchen.humidity",
        "com.example.house.hall.temperature"]
    assert [e[2].topic for e in wildcard.items] == [
        "com.example.house.kitchen.temperature", "com.example.house.hall.temperature"]


# ------------------------------------------------------------------------------------------------
# Subscriber black- and whitelisting
# ------------------------------------------------------------------------------------------------


async def test_black_and_white_lists_combine_and_select_the_receivers(clients):
    subscribers = {name: await clients.autobahn(t, s) for name, (t, s) in
                   zip("abc", [("websocket", "json"), ("rawsocket", "msgpack"),
                               ("websocket", "cbor")])}
    publisher = await clients.autobahn("rawsocket", "json")
    received = {}
    for name, session in subscribers.items():
        received[name], _ = await subscribe_collector(session, "com.example.bw")
    sid = {name: session_of(s).session for name, s in subscribers.items()}
    authid = {name: session_of(s).authid for name, s in subscribers.items()}

    publications = [
        (1, dict(exclude=[sid["a"]])),
        (2, dict(eligible=[sid["a"], sid["b"]])),
        (3, dict(eligible=[sid["a"], sid["b"]], exclude=[sid["b"]])),
        (4, dict(exclude_authrole=["anonymous"])),
        (5, dict(eligible_authid=[authid["c"]])),
        (6, dict(exclude_authid=[authid["c"]], eligible_authrole=["anonymous"])),
        (7, dict(eligible_authrole=["com.example.admin"])),
        (8, dict(eligible=[sid["a"], sid["c"]], eligible_authid=[authid["b"], authid["c"]])),
        (9, dict()),  # the marker: everyone gets it
    ]
    for number, options in publications:
        await publisher.publish("com.example.bw", number,
                                options=PublishOptions(acknowledge=True, **options))

    got = {}
    for name, events in received.items():
        items = await events.wait_until(lambda items: any(e[0] == (9,) for e in items),
                                        f"{name}: the marker event")
        got[name] = [e[0][0] for e in items]
    assert got == {"a": [2, 3, 6, 9], "b": [1, 2, 6, 9], "c": [1, 5, 8, 9]}


# ------------------------------------------------------------------------------------------------
# Event retention
# ------------------------------------------------------------------------------------------------


async def test_subscriber_asking_for_retained_event_gets_the_latest_one_marked_retained(clients):
    publisher = await clients.autobahn("websocket", "json")
    await publisher.publish("com.example.weather", "rain",
                            options=PublishOptions(retain=True, acknowledge=True))
    await publisher.publish("com.example.weather", "sun",
                            options=PublishOptions(retain=True, acknowledge=True))
    await publisher.publish("com.example.weather", "passing cloud",
                            options=PublishOptions(acknowledge=True))
    asking = await clients.autobahn("rawsocket", "cbor")
    not_asking = await clients.autobahn("websocket", "msgpack")

    with_retained, _ = await subscribe_collector(asking, "com.example.weather",
                                                 get_retained=True)
    without, _ = await subscribe_collector(not_asking, "com.example.weather")
    await publisher.publish("com.example.weather", "marker",
                            options=PublishOptions(acknowledge=True))

    first, marker = await with_retained.wait_for(2)
    assert first[0] == ("sun",) and first[2].retained is True, first
    assert marker[0] == ("marker",) and not marker[2].retained, marker
    [only] = await without.wait_for(1)
    assert only[0] == ("marker",), without.items


async def test_retained_event_is_not_given_to_a_subscriber_the_publication_excluded(clients):
    publisher = await clients.autobahn()
    await publisher.publish("com.example.secret", "for admins",
                            options=PublishOptions(retain=True, acknowledge=True,
                                                   eligible_authrole=["com.example.admin"]))
    subscriber = await clients.autobahn("rawsocket", "json")

    events, _ = await subscribe_collector(subscriber, "com.example.secret", get_retained=True)
    await publisher.publish("com.example.secret", "marker",
                            options=PublishOptions(acknowledge=True))

    [first] = await events.wait_for(1)
    assert first[0] == ("marker",), events.items


async def test_pattern_subscription_asking_for_retained_events_gets_one_per_matching_topic(
    clients,
):
    publisher = await clients.autobahn("rawsocket", "msgpack")
    for topic, value in [("com.example.rooms.kitchen", "old"), ("com.example.rooms.kitchen", "21"),
                         ("com.example.rooms.hall", "19"), ("com.example.garden", "12")]:
        await publisher.publish(topic, value,
                                options=PublishOptions(retain=True, acknowledge=True))
    subscriber = await clients.autobahn("websocket", "json")

    events, _ = await subscribe_collector(subscriber, "com.example.rooms", match="prefix",
                                          get_retained=True)
    await publisher.publish("com.example.rooms.marker", "marker",
                            options=PublishOptions(acknowledge=True))

    items = await events.wait_until(lambda items: any(e[0] == ("marker",) for e in items),
                                    "the marker event")
    retained = sorted((e[2].topic, e[0][0]) for e in items if e[2].retained)
    assert retained == [("com.example.rooms.hall", "19"), ("com.example.rooms.kitchen", "21")]
    assert len(items) == 3, items


# ------------------------------------------------------------------------------------------------
# Sharded registrations
# ------------------------------------------------------------------------------------------------


async def test_partitioned_calls_with_the_same_key_reach_the_same_callee(clients):
    callees = [await clients.autobahn() for _ in range(3)]
    for session, name in zip(callees, "abc"):
        await register_named(session, name, "com.example.shard", invoke="roundrobin")
    caller, _ = await raw_session(clients, caller={"sharded_registration": True})

    async def shard(key: str) -> str:
        reply = await call_result(caller, "com.example.shard",
                                  {"runmode": "partition", "rkey": key})
        return reply[3][0]

    alpha = [await shard("alpha") for _ in range(6)]
    beta = [await shard("beta") for _ in range(6)]
    spread = {await shard(f"key-{n}") for n in range(30)}

    assert len(set(alpha)) == 1, alpha
    assert len(set(beta)) == 1, beta
    # Without a key, round robin would have rotated through all three callees above.
    assert len(spread) >= 2, f"30 different keys all reached callee {spread}"
    assert [await shard("alpha") for _ in range(2)] == alpha[:2]


# ------------------------------------------------------------------------------------------------
# Registration and subscription revocation
# ------------------------------------------------------------------------------------------------


async def test_force_reregister_revokes_the_old_callee_and_routes_calls_to_the_new_one(clients):
    old, _ = await raw_session(clients, callee={"registration_revocation": True})
    new, _ = await raw_session(clients, "rawsocket", "cbor")
    caller, _ = await raw_session(clients)
    old_registration = await old.register("com.example.moving")

    await new.register("com.example.moving", {"force_reregister": True})

    revoked = await expect(old, UNREGISTERED, "old callee")
    assert revoked[1] == 0, revoked
    assert revoked[2].get("registration") == old_registration, revoked
    assert isinstance(revoked[2].get("reason"), str), revoked
    request = await send_call(caller, "com.example.moving", {}, ["where?"])
    invocation = await expect(new, INVOCATION, "new callee")
    await answer(new, invocation, "new")
    reply = await caller.recv()
    assert reply[:2] == [RESULT, request] and reply[3] == ["new"], reply


async def test_force_reregister_sends_no_unregistered_to_callee_without_revocation_feature(
    clients,
):
    old, _ = await raw_session(clients, callee={})
    new, _ = await raw_session(clients)
    caller, _ = await raw_session(clients)
    await old.register("com.example.moving")
    marker = await old.register("com.example.old_marker")

    await new.register("com.example.moving", {"force_reregister": True})

    request = await send_call(caller, "com.example.old_marker", {}, [])
    invocation = await old.recv()
    assert invocation[0] == INVOCATION and invocation[2] == marker, (
        f"old callee: expected the marker INVOCATION (and no UNREGISTERED), got {invocation!r}"
    )
    await answer(old, invocation)
    assert (await caller.recv())[:2] == [RESULT, request]
    await call_and_expect_callee(caller, new, "com.example.moving")


async def call_and_expect_callee(caller, callee, procedure: str) -> None:
    """A call to ``procedure`` must reach ``callee`` (its next message) and return."""
    request = await send_call(caller, procedure, {}, ["ping"])
    invocation = await expect(callee, INVOCATION, f"callee of {procedure}")
    await answer(callee, invocation, "pong")
    reply = await caller.recv()
    assert reply[:2] == [RESULT, request], reply


async def test_remove_callee_revokes_one_callee_with_the_given_reason(clients):
    revoked, revoked_id = await raw_session(clients, callee={"registration_revocation": True})
    kept, _ = await raw_session(clients, callee={"registration_revocation": True})
    admin, _ = await raw_session(clients, "rawsocket", "msgpack")
    registration = await revoked.register("com.example.pool", {"invoke": "roundrobin"})
    await kept.register("com.example.pool", {"invoke": "roundrobin"})

    await call_result(admin, "wamp.registration.remove_callee", {}, [registration, revoked_id],
                      {"reason": "com.example.maintenance"})

    notice = await expect(revoked, UNREGISTERED, "revoked callee")
    assert notice == [UNREGISTERED, 0, {"registration": registration,
                                         "reason": "com.example.maintenance"}], notice
    callees = await call_result(admin, "wamp.registration.list_callees", {}, [registration])
    assert revoked_id not in callees[3][0], callees
    for _ in range(2):  # round robin now only has the kept callee
        await call_and_expect_callee(admin, kept, "com.example.pool")


async def test_remove_subscriber_revokes_the_subscription_of_one_session(clients):
    revoked, revoked_id = await raw_session(clients, subscriber={"subscription_revocation": True})
    silent, silent_id = await raw_session(clients, "rawsocket", "cbor", subscriber={})
    admin, _ = await raw_session(clients)
    subscription = await revoked.subscribe("com.example.feed")
    assert await silent.subscribe("com.example.feed") == subscription
    for peer in (revoked, silent):
        await peer.subscribe("com.example.marker")

    await call_result(admin, "wamp.subscription.remove_subscriber", {}, [subscription, revoked_id],
                      {"reason": "com.example.kicked"})
    await call_result(admin, "wamp.subscription.remove_subscriber", {}, [subscription, silent_id])

    notice = await expect(revoked, UNSUBSCRIBED, "subscriber with subscription_revocation")
    assert notice == [UNSUBSCRIBED, 0, {"subscription": subscription,
                                         "reason": "com.example.kicked"}], notice
    await publish_acknowledged(admin, "com.example.feed", {}, ["after removal"])
    await publish_acknowledged(admin, "com.example.marker", {}, ["marker"])
    for name, peer in [("revoked", revoked), ("silent", silent)]:
        message = await peer.recv()
        assert message[0] == EVENT and message[4] == ["marker"], (
            f"{name}: expected only the marker EVENT (no UNSUBSCRIBED without the feature, no "
            f"event of the removed subscription), got {message!r}"
        )


# ------------------------------------------------------------------------------------------------
# Call rerouting
# ------------------------------------------------------------------------------------------------


async def unavailable(callee, invocation: list) -> None:
    await callee.send([ERROR, INVOCATION, invocation[1], {}, "wamp.error.unavailable"])


async def test_unavailable_callee_is_skipped_for_the_next_callee_of_a_shared_registration(clients):
    busy, _ = await raw_session(clients, callee={"call_reroute": True})
    free, _ = await raw_session(clients, "rawsocket", "msgpack", callee={"call_reroute": True})
    caller, _ = await raw_session(clients)
    await busy.register("com.example.reroute", {"invoke": "roundrobin"})
    await free.register("com.example.reroute", {"invoke": "roundrobin"})

    request = await send_call(caller, "com.example.reroute", {}, ["job"], {"size": 3})
    first = await expect(busy, INVOCATION, "first callee")
    await unavailable(busy, first)
    second = await expect(free, INVOCATION, "second callee after the first was unavailable")
    assert second[4:] == [["job"], {"size": 3}], second
    await answer(free, second, "done")

    reply = await caller.recv()
    assert reply[:2] == [RESULT, request] and reply[3] == ["done"], reply


@pytest.mark.parametrize("policy,order", [("first", [0, 1, 2]), ("last", [2, 1, 0])])
async def test_rerouting_follows_the_hot_standby_order(clients, policy, order):
    callees = [(await raw_session(clients, callee={"call_reroute": True}))[0] for _ in range(3)]
    caller, _ = await raw_session(clients)
    for callee in callees:
        await callee.register("com.example.standby", {"invoke": policy})

    request = await send_call(caller, "com.example.standby", {}, [])
    for index in order[:2]:
        invocation = await expect(callees[index], INVOCATION, f"callee {index}")
        await unavailable(callees[index], invocation)
    last = await expect(callees[order[2]], INVOCATION, f"callee {order[2]}")
    await answer(callees[order[2]], last, order[2])

    reply = await caller.recv()
    assert reply[:2] == [RESULT, request] and reply[3] == [order[2]], reply


@pytest.mark.parametrize("callee_count,invoke", [(1, "single"), (2, "roundrobin")])
async def test_call_fails_with_no_available_callee_when_every_callee_is_unavailable(
    clients, callee_count, invoke
):
    callees = [(await raw_session(clients, callee={"call_reroute": True}))[0]
               for _ in range(callee_count)]
    caller, _ = await raw_session(clients)
    for callee in callees:
        await callee.register("com.example.busy", {"invoke": invoke})

    request = await send_call(caller, "com.example.busy", {}, [])
    for callee in callees:
        await unavailable(callee, await expect(callee, INVOCATION, "callee"))

    assert_error(await caller.recv(), CALL, request, "wamp.error.no_available_callee")


# ------------------------------------------------------------------------------------------------
# Concurrency limits
# ------------------------------------------------------------------------------------------------


async def test_calls_beyond_the_concurrency_limit_are_refused_until_one_finishes(clients):
    callee, _ = await raw_session(clients)
    caller, _ = await raw_session(clients, "rawsocket", "json")
    await callee.register("com.example.one_at_a_time", {"concurrency": 1})

    first = await send_call(caller, "com.example.one_at_a_time", {}, [1])
    invocation = await expect(callee, INVOCATION, "callee")
    refused = await call_error(caller, "com.example.one_at_a_time", {}, [2])
    assert refused[4] == "wamp.error.no_available_callee", refused

    await answer(callee, invocation, "first done")
    assert (await caller.recv())[:2] == [RESULT, first]
    await call_and_expect_callee(caller, callee, "com.example.one_at_a_time")


async def test_concurrency_limit_of_shared_registration_moves_calls_to_callees_with_room(clients):
    a, _ = await raw_session(clients)
    b, _ = await raw_session(clients)
    caller, _ = await raw_session(clients)
    for callee in (a, b):
        await callee.register("com.example.limited", {"invoke": "roundrobin", "concurrency": 1})

    await send_call(caller, "com.example.limited", {}, ["one"])
    on_a = await expect(a, INVOCATION, "callee a")
    await send_call(caller, "com.example.limited", {}, ["two"])
    on_b = await expect(b, INVOCATION, "callee b")
    refused = await call_error(caller, "com.example.limited", {}, ["three"])
    assert refused[4] == "wamp.error.no_available_callee", refused

    await answer(a, on_a, "one done")
    assert (await caller.recv())[0] == RESULT
    # Round robin would pick b next, but b is full: the call goes to a.
    await send_call(caller, "com.example.limited", {}, ["four"])
    moved = await expect(a, INVOCATION, "callee a, the only one with room")
    assert moved[4] == ["four"], moved
    assert on_b[4] == ["two"]


# ------------------------------------------------------------------------------------------------
# Event history
# ------------------------------------------------------------------------------------------------


async def history_pair(clients):
    subscriber, _ = await raw_session(clients, "websocket", "json")
    publisher, _ = await raw_session(clients, "rawsocket", "cbor")
    return subscriber, publisher


async def get_events(peer, subscription: int, **filters) -> list:
    """wamp.subscription.get_events called by ``peer``, which must not be subscribed itself (an
    EVENT would arrive instead of the RESULT)."""
    reply = await call_result(peer, "wamp.subscription.get_events", {}, [subscription], filters)
    assert len(reply[3]) == 1 and isinstance(reply[3][0], list), reply
    return reply[3][0]


@pytest.mark.router_config(HISTORY_CONFIG)
async def test_event_history_returns_stored_events_in_publication_order(clients):
    subscriber, publisher = await history_pair(clients)
    subscription = await subscriber.subscribe("com.example.history.a")
    before = datetime.now(timezone.utc)

    publications = [
        await publish_acknowledged(publisher, "com.example.history.a", {}, [n], {"n": n})
        for n in range(3)
    ]

    events = await get_events(publisher, subscription)
    after = datetime.now(timezone.utc)
    assert [e["publication"] for e in events] == publications, events
    assert [(e["args"], e["kwargs"]) for e in events] == [([n], {"n": n}) for n in range(3)]
    assert all(e["subscription"] == subscription for e in events), events
    assert all(isinstance(e["details"], dict) for e in events), events
    stamps = [parse_rfc3339(e["timestamp"]) for e in events]
    assert stamps == sorted(stamps), stamps
    assert all(before.replace(microsecond=0) <= s <= after for s in stamps), (before, stamps, after)


@pytest.mark.router_config(HISTORY_CONFIG)
async def test_event_history_keeps_the_configured_number_and_honours_limit_and_reverse(clients):
    subscriber, publisher = await history_pair(clients)
    subscription = await subscriber.subscribe("com.example.history.b")
    publications = [await publish_acknowledged(publisher, "com.example.history.b", {}, [n])
                    for n in range(6)]
    kept = publications[2:]  # limit = 4 in the configuration

    def ids(events):
        return [e["publication"] for e in events]

    assert ids(await get_events(publisher, subscription)) == kept
    assert ids(await get_events(publisher, subscription, limit=2)) == kept[:2]
    assert ids(await get_events(publisher, subscription, reverse=True)) == kept[::-1]
    assert ids(await get_events(publisher, subscription, reverse=True, limit=3)) == kept[:0:-1]


@pytest.mark.router_config(HISTORY_CONFIG)
async def test_event_history_filters_by_publication(clients):
    subscriber, publisher = await history_pair(clients)
    subscription = await subscriber.subscribe("com.example.history.c")
    p = [await publish_acknowledged(publisher, "com.example.history.c", {}, [n]) for n in range(4)]

    async def ids(**filters):
        return [e["publication"] for e in await get_events(publisher, subscription, **filters)]

    assert await ids(from_publication=p[1]) == p[1:]
    assert await ids(after_publication=p[1]) == p[2:]
    assert await ids(before_publication=p[2]) == p[:2]
    assert await ids(until_publication=p[2]) == p[:3]
    assert await ids(after_publication=p[0], before_publication=p[3]) == p[1:3]
    assert await ids(reverse=True, before_publication=p[3], limit=2) == [p[2], p[1]]


@pytest.mark.router_config(HISTORY_CONFIG)
async def test_event_history_filters_by_time(clients):
    subscriber, publisher = await history_pair(clients)
    subscription = await subscriber.subscribe("com.example.history.d")
    for n in range(4):
        await publish_acknowledged(publisher, "com.example.history.d", {}, [n])
    events = await get_events(publisher, subscription)
    stamps = [(e["publication"], parse_rfc3339(e["timestamp"])) for e in events]
    pivot_text = events[1]["timestamp"]
    pivot = parse_rfc3339(pivot_text)

    async def ids(**filters):
        return [e["publication"] for e in await get_events(publisher, subscription, **filters)]

    # The comparisons are made against the timestamps the router reports for the events (spec:
    # from >=, after >, before <, until <=), so an event's own timestamp must select it or not
    # exactly as the comparison says.
    got = {key: await ids(**{key: pivot_text})
           for key in ("from_time", "after_time", "before_time", "until_time")}
    assert got == {
        "from_time": [p for p, t in stamps if t >= pivot],
        "after_time": [p for p, t in stamps if t > pivot],
        "before_time": [p for p, t in stamps if t < pivot],
        "until_time": [p for p, t in stamps if t <= pivot],
    }, f"pivot {pivot_text}, events {[(p, t.isoformat()) for p, t in stamps]}"
    assert await ids(until_time="2000-01-01T00:00:00Z") == []
    assert await ids(from_time="2000-01-01T00:00:00Z") == [p for p, _ in stamps]


@pytest.mark.router_config(HISTORY_CONFIG)
async def test_event_history_of_pattern_subscription_covers_every_matching_topic(clients):
    subscriber, publisher = await history_pair(clients)
    subscription = await subscriber.subscribe("com.example.history", {"match": "prefix"})
    published = []
    for topic in ["com.example.history.x", "com.example.history.y", "com.example.history.x"]:
        published.append((await publish_acknowledged(publisher, topic, {}, [topic]), topic))

    events = await get_events(publisher, subscription)
    only_y = await get_events(publisher, subscription, topic="com.example.history.y")

    assert [(e["publication"], e["details"].get("topic")) for e in events] == published, events
    assert [e["publication"] for e in only_y] == [published[1][0]], only_y


@pytest.mark.router_config(HISTORY_CONFIG)
async def test_event_history_skips_events_that_name_sessions_and_hides_ineligible_ones(clients):
    subscriber, subscriber_id = await raw_session(clients)
    publisher, _ = await raw_session(clients, "rawsocket", "cbor")
    subscription = await subscriber.subscribe("com.example.history.e")

    stored = await publish_acknowledged(publisher, "com.example.history.e", {}, ["plain"])
    await publish_acknowledged(publisher, "com.example.history.e", {"exclude": [123456]}, ["x"])
    await publish_acknowledged(publisher, "com.example.history.e",
                               {"eligible": [subscriber_id]}, ["e"])
    await publish_acknowledged(publisher, "com.example.history.e",
                               {"eligible_authrole": ["com.example.admin"]}, ["admins only"])
    by_authid = await publish_acknowledged(publisher, "com.example.history.e",
                                           {"exclude_authid": ["somebody-else"]}, ["by authid"])

    events = await get_events(publisher, subscription)

    assert [e["publication"] for e in events] == [stored, by_authid], events


@pytest.mark.router_config(HISTORY_CONFIG)
async def test_event_history_of_topic_without_history_is_empty(clients):
    subscriber, publisher = await history_pair(clients)
    subscription = await subscriber.subscribe("com.example.no_history")
    await publish_acknowledged(publisher, "com.example.no_history", {}, [1])

    assert await get_events(publisher, subscription) == []
    reply = await call_error(publisher, "wamp.subscription.get_events", {}, [1234567])
    assert reply[4] == "wamp.error.no_such_subscription", reply


# ------------------------------------------------------------------------------------------------
# Payload passthru mode
# ------------------------------------------------------------------------------------------------

PPT = {"payload_passthru_mode": True}
PPT_OPTIONS = {"ppt_scheme": "x_junction_test", "ppt_serializer": "native",
               "ppt_cipher": "xsalsa20poly1305", "ppt_keyid": "key-1"}
SEALED = b"\x00\x01sealed\xff\xfe"


@pytest.mark.parametrize("caller_serializer,callee_serializer", [
    ("cbor", "cbor"), ("msgpack", "cbor"), ("json", "msgpack"),
])
async def test_passthru_call_forwards_ppt_attributes_and_binary_payload(
    clients, caller_serializer, callee_serializer
):
    callee, _ = await raw_session(clients, "rawsocket", callee_serializer, callee=PPT)
    caller, _ = await raw_session(clients, "websocket", caller_serializer, caller=PPT)
    await callee.register("com.example.sealed")
    sealed = json_binary(SEALED) if caller_serializer == "json" else SEALED

    request = await send_call(caller, "com.example.sealed", PPT_OPTIONS, [sealed])
    invocation = await expect(callee, INVOCATION, "callee")
    assert {k: invocation[3].get(k) for k in PPT_OPTIONS} == PPT_OPTIONS, invocation
    assert invocation[4] == [SEALED], invocation
    assert len(invocation) == 5, f"no kwargs expected in passthru mode: {invocation!r}"

    reply_options = {"ppt_scheme": "x_junction_test", "ppt_serializer": "cbor"}
    await callee.send([YIELD, invocation[1], reply_options, [b"\x02reply"]])
    reply = await caller.recv()
    assert reply[:2] == [RESULT, request], reply
    assert {k: reply[2].get(k) for k in reply_options} == reply_options, reply
    expected = json_binary(b"\x02reply") if caller_serializer == "json" else b"\x02reply"
    assert reply[3] == [expected], reply


@pytest.mark.parametrize("feature_name", ["payload_passthru_mode", "payload_transparency"])
async def test_passthru_publication_reaches_only_subscribers_announcing_the_feature(
    clients, feature_name
):
    capable, _ = await raw_session(clients, "websocket", "msgpack",
                                   subscriber={feature_name: True})
    plain, _ = await raw_session(clients, "rawsocket", "cbor", subscriber={})
    publisher, _ = await raw_session(clients, "websocket", "cbor", publisher={feature_name: True})
    for peer in (capable, plain):
        await peer.subscribe("com.example.sealed_news")

    await publish_acknowledged(publisher, "com.example.sealed_news", PPT_OPTIONS, [SEALED])
    await publish_acknowledged(publisher, "com.example.sealed_news", {}, ["marker"])

    event = await expect(capable, EVENT, "subscriber with payload passthru")
    assert {k: event[3].get(k) for k in PPT_OPTIONS} == PPT_OPTIONS, event
    assert event[4] == [SEALED], event
    marker = await expect(plain, EVENT, "subscriber without payload passthru")
    assert marker[4] == ["marker"], f"the passthru event reached a plain subscriber: {marker!r}"


async def test_passthru_call_to_callee_without_the_feature_fails_with_feature_not_supported(
    clients,
):
    callee, _ = await raw_session(clients, "websocket", "cbor", callee={})
    caller, _ = await raw_session(clients, "websocket", "cbor", caller=PPT)
    await callee.register("com.example.sealed")

    reply = await call_error(caller, "com.example.sealed", PPT_OPTIONS, [SEALED])

    assert reply[4] == "wamp.error.feature_not_supported", reply


@pytest.mark.parametrize("message", ["call", "publish"])
async def test_passthru_options_from_a_peer_that_did_not_announce_the_feature_abort_it(
    clients, message
):
    peer, _ = await raw_session(clients, "websocket", "cbor")
    if message == "call":
        await send_call(peer, "com.example.sealed", PPT_OPTIONS, [SEALED])
    else:
        await peer.send([PUBLISH, peer.next_request_id(), PPT_OPTIONS, "com.example.sealed",
                         [SEALED]])

    await peer.expect_abort("wamp.error.protocol_violation")


async def test_passthru_yield_from_a_callee_that_did_not_announce_the_feature_aborts_it(clients):
    callee, _ = await raw_session(clients, "websocket", "cbor", callee={})
    caller, _ = await raw_session(clients, "websocket", "cbor", caller=PPT)
    await callee.register("com.example.plain")
    await send_call(caller, "com.example.plain", {}, ["x"])
    invocation = await expect(callee, INVOCATION, "callee")

    await callee.send([YIELD, invocation[1], PPT_OPTIONS, [SEALED]])

    await callee.expect_abort("wamp.error.protocol_violation")


async def test_passthru_yield_to_a_caller_without_the_feature_fails_with_feature_not_supported(
    clients,
):
    # Spec: YIELD with payload passthru that must go to a Caller without the feature is an
    # application error, and the Dealer answers the Callee with wamp.error.feature_not_supported.
    callee, _ = await raw_session(clients, "websocket", "cbor", callee=PPT)
    caller, _ = await raw_session(clients, "websocket", "cbor", caller={})
    await callee.register("com.example.plain")
    await send_call(caller, "com.example.plain", {}, ["x"])
    invocation = await expect(callee, INVOCATION, "callee")

    await callee.send([YIELD, invocation[1], PPT_OPTIONS, [SEALED]])

    reply = await recv_or_explain(callee, "callee", caller, "the caller")
    assert_error(reply, YIELD, invocation[1], "wamp.error.feature_not_supported")


# ------------------------------------------------------------------------------------------------
# Batched WebSocket
# ------------------------------------------------------------------------------------------------


def batch(serializer: str, messages: list[list]) -> bytes | str:
    """One WebSocket message carrying ``messages`` in the batched framing."""
    if serializer == "json":
        return "".join(json.dumps(m, separators=(",", ":")) + "\x1e" for m in messages)
    encode = msgpack.packb if serializer == "msgpack" else cbor2.dumps
    out = b""
    for m in messages:
        body = encode(m, use_bin_type=True) if serializer == "msgpack" else encode(m)
        out += len(body).to_bytes(4, "big") + body
    return out


def unbatch(serializer: str, data: bytes | str) -> list[list]:
    """The WAMP messages of one batched WebSocket message; fails on bad framing."""
    if serializer == "json":
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        assert text.endswith("\x1e"), f"batched JSON must end each message with 0x1e: {text!r}"
        return [json.loads(part) for part in text.split("\x1e")[:-1]]
    assert isinstance(data, bytes), f"binary batch expected, got {data!r}"
    messages, offset = [], 0
    while offset < len(data):
        assert offset + 4 <= len(data), f"truncated length prefix in {data.hex()}"
        length = int.from_bytes(data[offset:offset + 4], "big")
        body = data[offset + 4:offset + 4 + length]
        assert len(body) == length, f"batch announces {length} octets, has {len(body)}"
        messages.append(msgpack.unpackb(body, raw=False, strict_map_key=False)
                        if serializer == "msgpack" else cbor2.loads(body))
        offset += 4 + length
    assert messages, "a batch with no message is illegal"
    return messages


class BatchedPeer:
    def __init__(self, ws, serializer: str):
        self.ws = ws
        self.serializer = serializer
        self.pending: list[list] = []

    @classmethod
    async def open(cls, router, serializer: str) -> "BatchedPeer":
        subprotocol = f"wamp.2.{serializer}.batched"
        ws = await ws_connect(router.ws_url, subprotocols=[subprotocol], open_timeout=RECV_TIMEOUT,
                              ping_interval=None)
        assert ws.subprotocol == subprotocol, ws.subprotocol
        return cls(ws, serializer)

    async def send(self, *messages: list) -> None:
        await self.ws.send(batch(self.serializer, list(messages)))

    async def recv(self) -> list:
        while not self.pending:
            data = await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT)
            self.pending.extend(unbatch(self.serializer, data))
        return self.pending.pop(0)

    async def close(self) -> None:
        await asyncio.wait_for(self.ws.close(), RECV_TIMEOUT)


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
async def test_batched_websocket_carries_several_messages_per_websocket_message(router, serializer):
    peer = await BatchedPeer.open(router, serializer)
    try:
        await peer.send([1, REALM, hello_details()])
        welcome = await peer.recv()
        assert welcome[0] == WELCOME, welcome

        await peer.send(
            [SUBSCRIBE, 1, {}, "com.example.batched"],
            [PUBLISH, 2, {"acknowledge": True, "exclude_me": False}, "com.example.batched",
             ["hi", b"\x01\x02" if serializer != "json" else json_binary(b"\x01\x02")]],
            [CALL, 3, {}, "wamp.session.count"],
        )
        replies = [await peer.recv() for _ in range(4)]
    finally:
        await peer.close()

    assert replies[0][:2] == [SUBSCRIBED, 1], replies
    by_type = {m[0]: m for m in replies[1:]}
    assert set(by_type) == {EVENT, PUBLISHED, RESULT}, replies
    binary = b"\x01\x02" if serializer != "json" else json_binary(b"\x01\x02")
    assert by_type[EVENT][4] == ["hi", binary], by_type[EVENT]
    assert by_type[RESULT][:2] == [RESULT, 3] and by_type[RESULT][3] == [1], by_type[RESULT]


@pytest.mark.parametrize("serializer", ["json", "cbor"])
async def test_batched_websocket_message_without_any_wamp_message_fails_the_transport(
    router, serializer
):
    peer = await BatchedPeer.open(router, serializer)
    await peer.send([1, REALM, hello_details()])
    assert (await peer.recv())[0] == WELCOME

    await peer.ws.send("" if serializer == "json" else b"")

    async def until_closed():
        while True:
            await peer.ws.recv()

    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(until_closed(), RECV_TIMEOUT)


async def test_batched_and_plain_websocket_peers_talk_to_each_other(router, clients):
    plain, _ = await raw_session(clients, "websocket", "msgpack", callee={})
    await plain.register("com.example.plain_echo")
    peer = await BatchedPeer.open(router, "msgpack")
    try:
        await peer.send([1, REALM, hello_details()])
        assert (await peer.recv())[0] == WELCOME
        await peer.send([CALL, 1, {}, "com.example.plain_echo", ["over", "batched"]])
        invocation = await expect(plain, INVOCATION, "plain callee")
        await plain.send([YIELD, invocation[1], {}, invocation[4]])
        reply = await peer.recv()
    finally:
        await peer.close()

    assert reply == [RESULT, 1, {}, ["over", "batched"]], reply


def test_harness_helpers_round_trip_batches():
    # The framing helpers themselves: so a failure above is the router's, not the test's.
    for serializer in ("json", "msgpack", "cbor"):
        messages = [[1, "realm1", {}], [6, {}, "wamp.close.normal"]]
        assert unbatch(serializer, batch(serializer, messages)) == messages
    with pytest.raises(AssertionError):
        unbatch("cbor", b"")

