"""Peers that speak different serializers (and transports, and client libraries) talk to each other.

Binary values are the hard part: CBOR and MessagePack carry bytes natively, JSON carries them as a
string made of a NUL character followed by base64 (``"\\u0000" + base64``). The router must convert
in both directions when it re-serializes a message for a peer that uses another serializer.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
import xconn.types
from autobahn.wamp.types import CallResult, PublishOptions

from junction_harness import (
    EVENT,
    PUBLISH,
    PUBLISHED,
    RECV_TIMEOUT,
    Collector,
    json_binary,
)

ACK = PublishOptions(acknowledge=True)


def sample_bytes(size: int) -> bytes:
    """Every byte value (NUL included) followed by random bytes, ``size`` bytes in all."""
    head = bytes(range(256))
    return (head + os.urandom(max(0, size - len(head))))[:size]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "caller_side,callee_side",
    [
        (("websocket", "json"), ("rawsocket", "cbor")),
        (("rawsocket", "msgpack"), ("websocket", "json")),
        (("websocket", "cbor"), ("rawsocket", "msgpack")),
        (("rawsocket", "json"), ("websocket", "msgpack")),
        (("websocket", "cbor"), ("websocket", "json")),
    ],
    ids=lambda side: "-".join(side),
)
async def test_binary_arguments_and_results_survive_a_call_between_serializers(
    clients, caller_side, callee_side
):
    callee = await clients.autobahn(*callee_side)
    caller = await clients.autobahn(*caller_side)
    blob = sample_bytes(64 * 1024)
    small = b"\x00\x01\xfe\xff"
    received = []

    def inspect(blob, nested=None, label=None):
        received.append((blob, nested, label))
        return CallResult(blob[::-1], sha256=digest(blob), nested=nested, label=label)

    await callee.register(inspect, "com.example.inspect")
    result = await asyncio.wait_for(
        caller.call("com.example.inspect", blob, nested={"inner": [small, "not binary"]},
                    label="plain string"),
        RECV_TIMEOUT,
    )

    [(got_blob, got_nested, got_label)] = received
    assert isinstance(got_blob, bytes) and got_blob == blob, "callee did not get the same bytes"
    assert got_nested == {"inner": [small, "not binary"]}
    assert got_label == "plain string" and isinstance(got_label, str)
    assert isinstance(result.results[0], bytes) and result.results[0] == blob[::-1]
    assert result.kwresults["sha256"] == digest(blob)
    assert result.kwresults["nested"] == {"inner": [small, "not binary"]}


async def test_json_caller_cbor_callee_and_msgpack_subscriber_share_binary_payload(clients):
    caller = await clients.autobahn("websocket", "json")
    callee = await clients.autobahn("rawsocket", "cbor")
    subscriber = await clients.autobahn("websocket", "msgpack")
    events = Collector()
    await subscriber.subscribe(lambda data, **kw: events.add((data, kw)), "com.example.relayed")

    async def relay(data):
        # The callee republishes what it was given, so the bytes cross three serializers.
        await callee.publish("com.example.relayed", data, origin="callee", options=ACK)
        return digest(data)

    await callee.register(relay, "com.example.relay")
    payload = sample_bytes(4096)
    result = await asyncio.wait_for(caller.call("com.example.relay", payload), RECV_TIMEOUT)
    [(data, kw)] = await events.wait_for(1)

    assert result == digest(payload)
    assert isinstance(data, bytes) and data == payload
    assert kw == {"origin": "callee"}


async def test_binary_event_from_json_publisher_reaches_every_serializer_as_bytes(clients):
    publisher = await clients.autobahn("websocket", "json")
    sides = [("rawsocket", "msgpack"), ("websocket", "cbor"), ("rawsocket", "json"),
             ("websocket", "json")]
    collectors = []
    for side in sides:
        session = await clients.autobahn(*side)
        events = Collector()
        await session.subscribe(lambda data, events=events: events.add(data), "com.example.bin")
        collectors.append((side, events))

    payload = sample_bytes(2048)
    await publisher.publish("com.example.bin", payload, options=ACK)

    for side, events in collectors:
        [data] = await events.wait_for(1)
        assert isinstance(data, bytes) and data == payload, side


@pytest.mark.parametrize("binary_serializer,binary_transport",
                         [("cbor", "websocket"), ("msgpack", "rawsocket")])
async def test_json_binary_string_is_delivered_as_native_bytes(clients, binary_serializer,
                                                               binary_transport):
    json_publisher = await clients.raw("websocket", "json")
    binary_subscriber = await clients.raw(binary_transport, binary_serializer)
    await json_publisher.join()
    await binary_subscriber.join()
    data = sample_bytes(300)

    await binary_subscriber.subscribe("com.example.wire")
    pub_request, reply = await json_publisher.request(
        PUBLISH, {"acknowledge": True}, "com.example.wire",
        [json_binary(data), "plain"], {"blob": json_binary(b"")},
    )
    assert reply[:2] == [PUBLISHED, pub_request], reply
    event = await binary_subscriber.recv()

    assert event[0] == EVENT, event
    assert event[4] == [data, "plain"], f"args as received: {event[4]!r}"
    assert isinstance(event[4][0], bytes)
    assert event[5] == {"blob": b""}, f"kwargs as received: {event[5]!r}"


@pytest.mark.parametrize("binary_serializer", ["cbor", "msgpack"])
async def test_native_bytes_are_delivered_to_json_peer_as_nul_base64_string(clients,
                                                                           binary_serializer):
    binary_publisher = await clients.raw("rawsocket", binary_serializer)
    json_subscriber = await clients.raw("rawsocket", "json")
    await binary_publisher.join()
    await json_subscriber.join()
    data = bytes.fromhex("10e3ff9053075c526f5fc06d4fe37cdb")

    await json_subscriber.subscribe("com.example.wire")
    pub_request, reply = await binary_publisher.request(
        PUBLISH, {"acknowledge": True}, "com.example.wire", [data, "plain"], {"nested": [data]},
    )
    assert reply[:2] == [PUBLISHED, pub_request], reply
    event = await json_subscriber.recv()

    assert event[0] == EVENT, event
    # Spec example (binary JSON convention): 10e3ff...7cdb <-> "\u0000EOP/kFMHXFJvX8BtT+N82w=="
    assert event[4] == ["\x00EOP/kFMHXFJvX8BtT+N82w==", "plain"], f"args: {event[4]!r}"
    assert event[5] == {"nested": ["\x00EOP/kFMHXFJvX8BtT+N82w=="]}, event[5]


async def test_xconn_msgpack_caller_and_autobahn_json_callee_exchange_bytes(clients):
    callee = await clients.autobahn("websocket", "json")
    caller = await clients.xconn("rawsocket", "msgpack")
    payload = sample_bytes(10_000)

    await callee.register(lambda data: CallResult(data, size=len(data)), "com.example.bytes_echo")
    result = await asyncio.wait_for(caller.call("com.example.bytes_echo", [payload]), RECV_TIMEOUT)

    assert isinstance(result.args[0], bytes) and result.args[0] == payload
    assert result.kwargs == {"size": len(payload)}


async def test_xconn_cbor_subscriber_receives_bytes_from_autobahn_json_publisher(clients):
    subscriber = await clients.xconn("websocket", "cbor")
    publisher = await clients.autobahn("rawsocket", "json")
    events = Collector()

    async def on_event(event: xconn.types.Event) -> None:
        events.add(event)

    await asyncio.wait_for(subscriber.subscribe("io.xconn.binary", on_event), RECV_TIMEOUT)
    payload = sample_bytes(1500)
    await publisher.publish("io.xconn.binary", payload, check=digest(payload), options=ACK)
    [event] = await events.wait_for(1)

    assert event.args == [payload]
    assert event.kwargs == {"check": digest(payload)}


async def test_xconn_json_caller_reaches_autobahn_cbor_callee(clients):
    callee = await clients.autobahn("rawsocket", "cbor")
    caller = await clients.xconn("websocket", "json")

    await callee.register(lambda a, b, **kw: CallResult(a * b, **kw), "com.example.mul")
    result = await asyncio.wait_for(
        caller.call("com.example.mul", [6, 7], {"unit": "m²", "ok": True}), RECV_TIMEOUT
    )

    assert result.args == [42]
    assert result.kwargs == {"unit": "m²", "ok": True}
