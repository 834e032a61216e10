"""Remote procedure calls: register, call, yield, unregister and the dealer's errors."""

from __future__ import annotations

import asyncio

import pytest
import xconn.types
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult
from xconn.exception import ApplicationError as XconnApplicationError

from junction_harness import (
    CALL,
    INVOCATION,
    REGISTER,
    REGISTERED,
    RECV_TIMEOUT,
    RESULT,
    TRANSPORT_SERIALIZER_MATRIX,
    UNREGISTER,
    YIELD,
    Collector,
    assert_error,
)

# A payload that exercises the type mapping of every serializer: unicode, nesting, null,
# booleans, floats, negative and large integers (2**53 is the largest WAMP id and still exact in
# every serializer).
RICH_PAYLOAD = {
    "text": "grüße ✓ 日本",
    "nested": {"list": [1, 2.5, None, True, False, -7], "empty": {}},
    "big": 2**53,
}


@pytest.mark.parametrize("transport,serializer", TRANSPORT_SERIALIZER_MATRIX)
async def test_autobahn_call_is_routed_to_callee_and_result_returned(clients, transport, serializer):
    callee = await clients.autobahn(transport, serializer)
    caller = await clients.autobahn(transport, serializer)
    seen = []

    def add(a, b, scale=1, payload=None):
        seen.append((a, b, scale, payload))
        return CallResult(a + b, product=a * b * scale, payload=payload)

    await callee.register(add, "com.example.add")
    result = await asyncio.wait_for(
        caller.call("com.example.add", 2, 3, scale=10, payload=RICH_PAYLOAD), RECV_TIMEOUT
    )

    assert seen == [(2, 3, 10, RICH_PAYLOAD)]
    assert list(result.results) == [5]
    assert result.kwresults == {"product": 60, "payload": RICH_PAYLOAD}


@pytest.mark.parametrize("transport,serializer", TRANSPORT_SERIALIZER_MATRIX)
async def test_xconn_call_is_routed_to_callee_and_result_returned(clients, transport, serializer):
    callee = await clients.xconn(transport, serializer)
    caller = await clients.xconn(transport, serializer)

    async def echo(inv: xconn.types.Invocation) -> xconn.types.Result:
        return xconn.types.Result(args=list(reversed(inv.args)), kwargs={"got": inv.kwargs})

    await callee.register("io.xconn.echo", echo)
    result = await asyncio.wait_for(
        caller.call("io.xconn.echo", [1, "two", RICH_PAYLOAD], {"k": "v"}), RECV_TIMEOUT
    )

    assert result.args == [RICH_PAYLOAD, "two", 1]
    assert result.kwargs == {"got": {"k": "v"}}


async def test_xconn_invocation_without_kwargs_carries_no_kwargs(clients):
    callee = await clients.xconn("rawsocket", "cbor")
    caller = await clients.xconn("websocket", "msgpack")
    seen = []

    async def record(inv: xconn.types.Invocation) -> xconn.types.Result:
        seen.append((inv.args, inv.kwargs))
        return xconn.types.Result()

    await callee.register("io.xconn.record", record)
    await asyncio.wait_for(caller.call("io.xconn.record", [1, 2]), RECV_TIMEOUT)
    await asyncio.wait_for(caller.call("io.xconn.record", kwargs={"only": "kw"}), RECV_TIMEOUT)

    assert seen[0][0] == [1, 2] and not seen[0][1], seen
    assert not seen[1][0] and seen[1][1] == {"only": "kw"}, seen


async def test_call_and_result_frames_carry_args_and_kwargs_verbatim(clients):
    callee = await clients.raw("rawsocket", "msgpack")
    caller = await clients.raw("websocket", "json")
    await callee.join()
    await caller.join()

    registration_id = await callee.register("com.example.raw")

    call_request = caller.next_request_id()
    await caller.send([CALL, call_request, {}, "com.example.raw", [1, "two"], {"three": 3}])
    invocation = await callee.recv()
    assert invocation[0] == INVOCATION, invocation
    assert invocation[2] == registration_id, invocation
    assert isinstance(invocation[3], dict), invocation
    assert invocation[4:] == [[1, "two"], {"three": 3}], invocation

    await callee.send([YIELD, invocation[1], {}, ["ok"], {"n": 1}])
    result = await caller.recv()
    assert result[0] == RESULT and result[1] == call_request, result
    assert result[3:] == [["ok"], {"n": 1}], result


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "cbor")])
async def test_call_to_unknown_procedure_returns_no_such_procedure(clients, transport, serializer):
    caller = await clients.autobahn(transport, serializer)

    with pytest.raises(ApplicationError) as excinfo:
        await asyncio.wait_for(caller.call("com.example.nobody_here"), RECV_TIMEOUT)

    assert excinfo.value.error == "wamp.error.no_such_procedure"


async def test_xconn_call_to_unknown_procedure_returns_no_such_procedure(clients):
    caller = await clients.xconn("rawsocket", "msgpack")

    with pytest.raises(XconnApplicationError) as excinfo:
        await asyncio.wait_for(caller.call("io.xconn.nobody_here"), RECV_TIMEOUT)

    assert excinfo.value.message == "wamp.error.no_such_procedure"


async def test_registering_a_taken_procedure_returns_procedure_already_exists(clients):
    first = await clients.autobahn("websocket", "msgpack")
    second = await clients.autobahn("rawsocket", "json")
    await first.register(lambda: "first", "com.example.taken")

    with pytest.raises(ApplicationError) as excinfo:
        await asyncio.wait_for(second.register(lambda: "second", "com.example.taken"), RECV_TIMEOUT)

    assert excinfo.value.error == "wamp.error.procedure_already_exists"
    # The original registration is untouched.
    assert await asyncio.wait_for(second.call("com.example.taken"), RECV_TIMEOUT) == "first"


async def test_unregistering_an_unknown_registration_returns_no_such_registration(clients):
    peer = await clients.raw("websocket", "cbor")
    await peer.join()

    request, reply = await peer.request(UNREGISTER, 424242)

    assert_error(reply, UNREGISTER, request, "wamp.error.no_such_registration")


async def test_unregistering_another_sessions_registration_returns_no_such_registration(clients):
    owner = await clients.autobahn("websocket", "json")
    other = await clients.raw("rawsocket", "json")
    registration = await owner.register(lambda: 1, "com.example.owned")
    await other.join()

    request, reply = await other.request(UNREGISTER, registration.id)

    assert_error(reply, UNREGISTER, request, "wamp.error.no_such_registration")


async def test_unregistered_procedure_is_no_longer_callable(clients):
    callee = await clients.autobahn("rawsocket", "msgpack")
    caller = await clients.autobahn("websocket", "cbor")
    registration = await callee.register(lambda: "here", "com.example.short_lived")
    assert await asyncio.wait_for(caller.call("com.example.short_lived"), RECV_TIMEOUT) == "here"

    await asyncio.wait_for(registration.unregister(), RECV_TIMEOUT)

    with pytest.raises(ApplicationError) as excinfo:
        await asyncio.wait_for(caller.call("com.example.short_lived"), RECV_TIMEOUT)
    assert excinfo.value.error == "wamp.error.no_such_procedure"


async def test_procedure_of_departed_callee_can_be_registered_again(clients):
    callee = await clients.autobahn("websocket", "json")
    await callee.register(lambda: "old", "com.example.reusable")
    callee.leave()
    await asyncio.wait_for(asyncio.shield(callee.left), RECV_TIMEOUT)

    newcomer = await clients.autobahn("rawsocket", "cbor")
    await asyncio.wait_for(newcomer.register(lambda: "new", "com.example.reusable"), RECV_TIMEOUT)

    assert await asyncio.wait_for(newcomer.call("com.example.reusable"), RECV_TIMEOUT) == "new"


@pytest.mark.parametrize(
    "callee_side,caller_side",
    [
        (("websocket", "json"), ("websocket", "json")),
        (("rawsocket", "cbor"), ("websocket", "json")),
        (("websocket", "msgpack"), ("rawsocket", "cbor")),
    ],
    ids=lambda side: "-".join(side),
)
async def test_application_error_from_callee_reaches_caller_with_args_and_kwargs(
    clients, callee_side, caller_side
):
    callee = await clients.autobahn(*callee_side)
    caller = await clients.autobahn(*caller_side)

    def refuse(amount):
        raise ApplicationError("com.example.error.insufficient_funds", "not enough", amount,
                               balance=7, currency="EUR")

    await callee.register(refuse, "com.example.withdraw")
    with pytest.raises(ApplicationError) as excinfo:
        await asyncio.wait_for(caller.call("com.example.withdraw", 100), RECV_TIMEOUT)

    assert excinfo.value.error == "com.example.error.insufficient_funds"
    assert list(excinfo.value.args) == ["not enough", 100]
    assert excinfo.value.kwargs == {"balance": 7, "currency": "EUR"}


async def test_xconn_application_error_reaches_autobahn_caller(clients):
    callee = await clients.xconn("rawsocket", "cbor")
    caller = await clients.autobahn("websocket", "json")

    async def refuse(inv: xconn.types.Invocation) -> xconn.types.Result:
        raise XconnApplicationError("io.xconn.error.nope", "reason", 3)

    await callee.register("io.xconn.refuse", refuse)
    with pytest.raises(ApplicationError) as excinfo:
        await asyncio.wait_for(caller.call("io.xconn.refuse"), RECV_TIMEOUT)

    assert excinfo.value.error == "io.xconn.error.nope"
    assert list(excinfo.value.args) == ["reason", 3]


@pytest.mark.parametrize("how", ["goodbye", "transport_drop"])
async def test_pending_call_fails_with_canceled_when_callee_disconnects(clients, how):
    callee = await clients.autobahn("websocket", "json")
    caller = await clients.autobahn("rawsocket", "cbor")
    loop = asyncio.get_running_loop()
    invoked = loop.create_future()
    release = asyncio.Event()

    async def never_answers():
        invoked.set_result(None)
        await release.wait()
        return "too late"

    await callee.register(never_answers, "com.example.hangs")
    pending = asyncio.ensure_future(caller.call("com.example.hangs"))
    try:
        await asyncio.wait_for(asyncio.shield(invoked), RECV_TIMEOUT)

        if how == "goodbye":
            callee.leave()
        else:
            callee.drop_transport()

        with pytest.raises(ApplicationError) as excinfo:
            await asyncio.wait_for(pending, RECV_TIMEOUT)
        assert excinfo.value.error == "wamp.error.canceled"
    finally:
        release.set()
        if not pending.done():
            pending.cancel()


async def test_concurrent_calls_are_matched_to_their_results(clients):
    callee = await clients.autobahn("rawsocket", "msgpack")
    caller = await clients.autobahn("websocket", "json")
    gates = {i: asyncio.Event() for i in range(5)}
    arrived = Collector()

    async def gated(i):
        arrived.add(i)
        await gates[i].wait()
        return i * 100

    await callee.register(gated, "com.example.gated")
    calls = [asyncio.ensure_future(caller.call("com.example.gated", i)) for i in range(5)]
    try:
        await arrived.wait_for(5)
        # Answer in reverse order: each result must still reach the call it belongs to.
        for i in reversed(range(5)):
            gates[i].set()

        results = await asyncio.wait_for(asyncio.gather(*calls), RECV_TIMEOUT)
        assert results == [0, 100, 200, 300, 400]
    finally:
        for gate in gates.values():
            gate.set()


@pytest.mark.parametrize("procedure", ["a..b", "bad uri"])
async def test_register_with_invalid_uri_returns_invalid_uri_and_session_stays_usable(
    clients, procedure
):
    peer = await clients.raw("websocket", "json")
    await peer.join()

    bad, reply = await peer.request(REGISTER, {}, procedure)

    assert_error(reply, REGISTER, bad, "wamp.error.invalid_uri")
    good, reply = await peer.request(REGISTER, {}, "com.example.valid")
    assert reply[:2] == [REGISTERED, good], f"session unusable after invalid_uri: {reply!r}"


@pytest.mark.parametrize("procedure", ["a..b", "bad uri"])
async def test_call_with_invalid_uri_returns_invalid_uri_and_session_stays_usable(
    clients, procedure
):
    peer = await clients.raw("rawsocket", "cbor")
    await peer.join()

    bad, reply = await peer.request(CALL, {}, procedure, [1])

    assert_error(reply, CALL, bad, "wamp.error.invalid_uri")
    good, reply = await peer.request(CALL, {}, "com.example.nobody")
    assert_error(reply, CALL, good, "wamp.error.no_such_procedure")  # the session still works


async def test_late_yield_after_caller_left_is_dropped_and_callee_stays_usable(clients):
    callee = await clients.raw("rawsocket", "json")
    caller = await clients.raw("websocket", "msgpack")
    await callee.join()
    await caller.join()
    await callee.register("com.example.slow_raw")

    await caller.send([CALL, caller.next_request_id(), {}, "com.example.slow_raw", [1]])
    invocation = await callee.recv()
    assert invocation[0] == INVOCATION, invocation
    await caller.close()  # the caller goes away while its call is pending

    # The callee announced no call canceling, so it gets no INTERRUPT; its late YIELD must be
    # dropped without harming its session.
    await callee.send([YIELD, invocation[1], {}, ["late"]])
    second_caller = await clients.autobahn("websocket", "cbor")
    pending = asyncio.ensure_future(second_caller.call("com.example.slow_raw", 2))
    try:
        message = await callee.recv()
        assert message[0] == INVOCATION, f"expected the second INVOCATION, got {message!r}"
        assert message[4] == [2], message
        await callee.send([YIELD, message[1], {}, ["on time"]])
        assert await asyncio.wait_for(pending, RECV_TIMEOUT) == "on time"
    finally:
        if not pending.done():
            pending.cancel()
