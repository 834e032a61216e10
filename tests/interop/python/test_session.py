"""Session establishment and closing: HELLO/WELCOME, ABORT, GOODBYE, protocol violations."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from autobahn.wamp.exception import ApplicationError
from websockets.asyncio.client import connect as ws_connect

from junction_harness import (
    ABORT,
    CALL,
    GOODBYE,
    HELLO,
    RAW_CLIENT_ROLES,
    RECV_TIMEOUT,
    REALM,
    TRANSPORT_SERIALIZER_MATRIX,
    WELCOME,
    JoinFailed,
    connect_autobahn,
)

MAX_ID = 2**53


@pytest.mark.parametrize("transport,serializer", TRANSPORT_SERIALIZER_MATRIX)
async def test_welcome_announces_anonymous_identity_and_router_roles(clients, transport, serializer):
    peer = await clients.raw(transport, serializer)

    welcome = await peer.hello()

    assert welcome[0] == WELCOME, f"expected WELCOME, got {welcome!r}"
    assert len(welcome) == 3, f"WELCOME must be [2, Session, Details]: {welcome!r}"
    session_id, details = welcome[1], welcome[2]
    assert isinstance(session_id, int) and 1 <= session_id <= MAX_ID, session_id
    assert details.get("realm") == REALM, details
    assert details.get("authrole") == "anonymous", details
    assert details.get("authmethod") == "anonymous", details
    assert isinstance(details.get("authid"), str) and details["authid"], details
    assert isinstance(details.get("authprovider"), str) and details["authprovider"], details
    roles = details.get("roles")
    assert isinstance(roles, dict), details
    # Autobahn|Python rejects a WELCOME whose roles contain anything but broker and dealer.
    assert set(roles) == {"broker", "dealer"}, roles
    for role, body in roles.items():
        features = body.get("features", {})
        assert isinstance(features, dict), (role, body)
        assert all(isinstance(v, bool) for v in features.values()), (role, features)


async def test_two_sessions_get_distinct_session_ids(clients):
    first = await clients.raw("websocket", "json")
    second = await clients.raw("rawsocket", "cbor")

    assert await first.join() != await second.join()


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "cbor")])
async def test_autobahn_joins_realm_as_anonymous(clients, transport, serializer):
    session = await clients.autobahn(transport, serializer)

    details = session.joined.result()
    assert details.realm == REALM
    assert details.authrole == "anonymous"
    assert details.authmethod == "anonymous"
    assert isinstance(details.session, int) and details.session > 0


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "msgpack")])
async def test_hello_to_unknown_realm_is_aborted_with_no_such_realm(clients, transport, serializer):
    peer = await clients.raw(transport, serializer)

    reply = await peer.hello("com.example.no_such_realm_here")

    assert reply[0] == ABORT, f"expected ABORT, got {reply!r}"
    assert reply[2] == "wamp.error.no_such_realm", reply
    message = reply[1].get("message", "")
    assert "com.example.no_such_realm_here" in message, (
        f"ABORT Details.message should name the realm: {reply!r}"
    )


async def test_autobahn_join_to_unknown_realm_fails_with_no_such_realm(router):
    with pytest.raises(JoinFailed) as excinfo:
        session = await connect_autobahn(router, "websocket", "cbor", realm="nope.realm")
        await session.close()

    assert excinfo.value.reason == "wamp.error.no_such_realm"


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "cbor")])
async def test_goodbye_is_answered_with_goodbye_and_out(clients, transport, serializer):
    peer = await clients.raw(transport, serializer)
    await peer.join()

    await peer.send([GOODBYE, {}, "wamp.close.normal"])
    reply = await peer.recv()

    assert reply[0] == GOODBYE, f"expected GOODBYE, got {reply!r}"
    assert reply[2] == "wamp.close.goodbye_and_out", reply


async def test_autobahn_leave_gets_goodbye_and_out(clients):
    session = await clients.autobahn("websocket", "msgpack")

    session.leave()
    details = await asyncio.wait_for(asyncio.shield(session.left), RECV_TIMEOUT)

    assert details.reason == "wamp.close.goodbye_and_out"


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "msgpack")])
async def test_call_before_hello_is_aborted_with_protocol_violation(clients, transport, serializer):
    peer = await clients.raw(transport, serializer)

    await peer.send([CALL, 1, {}, "com.example.proc", [1]])

    await peer.expect_abort("wamp.error.protocol_violation")


@pytest.mark.parametrize("transport,serializer", [("websocket", "cbor"), ("rawsocket", "json")])
async def test_second_hello_is_aborted_with_protocol_violation(clients, transport, serializer):
    peer = await clients.raw(transport, serializer)
    await peer.join()

    await peer.send([HELLO, REALM, {"roles": RAW_CLIENT_ROLES}])

    await peer.expect_abort("wamp.error.protocol_violation")


async def test_unknown_message_type_is_aborted_with_protocol_violation(clients):
    peer = await clients.raw("websocket", "json")
    await peer.join()

    await peer.send([999, 1, {}])

    await peer.expect_abort("wamp.error.protocol_violation")


async def test_websocket_with_unknown_subprotocol_is_refused(router):
    try:
        ws = await ws_connect(router.ws_url, subprotocols=["wamp.2.bogus"], open_timeout=RECV_TIMEOUT)
    except websockets.InvalidHandshake:
        return  # refused during the opening handshake, as expected

    # The router accepted the upgrade anyway: that is already the failure. Find out whether it
    # also serves a WAMP session on it, for the report.
    selected = ws.subprotocol
    try:
        await ws.send('[1,"realm1",{"roles":{"caller":{}}}]')
        reply = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
    except (websockets.ConnectionClosed, asyncio.TimeoutError) as e:
        reply = f"no reply ({e!r})"
    finally:
        await ws.close()
    pytest.fail(
        f"router accepted a WebSocket upgrade offering only subprotocol wamp.2.bogus "
        f"(selected subprotocol {selected!r}); reply to HELLO: {reply!r}"
    )


async def test_protocol_violation_removes_the_offending_sessions_registrations(clients):
    offender = await clients.raw("websocket", "json")
    await offender.join()
    await offender.register("com.example.offender_proc")

    await offender.send([HELLO, REALM, {"roles": RAW_CLIENT_ROLES}])  # a protocol violation
    await offender.expect_abort("wamp.error.protocol_violation")

    observer = await clients.autobahn("rawsocket", "msgpack")
    with pytest.raises(ApplicationError) as excinfo:
        await asyncio.wait_for(observer.call("com.example.offender_proc"), RECV_TIMEOUT)
    assert excinfo.value.error == "wamp.error.no_such_procedure"
    # The procedure is free to be registered by someone else.
    await asyncio.wait_for(observer.register(lambda: "mine", "com.example.offender_proc"),
                           RECV_TIMEOUT)
    assert await asyncio.wait_for(observer.call("com.example.offender_proc"), RECV_TIMEOUT) == "mine"


@pytest.mark.parametrize(
    "transport,serializer,payload",
    [
        ("websocket", "json", "this is not json"),
        ("rawsocket", "cbor", b"\xff\xff\xff"),
        ("websocket", "msgpack", b"\xc1"),
    ],
    ids=["json", "cbor", "msgpack"],
)
async def test_undecodable_message_is_aborted_with_protocol_violation(
    clients, transport, serializer, payload
):
    peer = await clients.raw(transport, serializer)
    await peer.join()

    await peer.send_encoded(payload)

    await peer.expect_abort("wamp.error.protocol_violation")


async def test_hello_without_realm_is_aborted_with_protocol_violation(clients):
    peer = await clients.raw("websocket", "json")

    await peer.send([HELLO])

    await peer.expect_abort("wamp.error.protocol_violation")
