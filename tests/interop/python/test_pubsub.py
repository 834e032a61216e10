"""Publish and subscribe: delivery, publisher exclusion, acknowledgement, subscription ids, URIs.

Tests that check that an event is *not* delivered never wait for a fixed time. They publish a
marker event afterwards from the same publisher and wait for that: the router delivers one
publisher's events to a subscriber in order, so the unwanted event would have arrived first.
"""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
import xconn.types
from autobahn.wamp.types import PublishOptions

from junction_harness import (
    EVENT,
    PUBLISH,
    PUBLISHED,
    RECV_TIMEOUT,
    SUBSCRIBE,
    SUBSCRIBED,
    TRANSPORT_SERIALIZER_MATRIX,
    UNSUBSCRIBE,
    Collector,
    assert_error,
    subscribe_collector,
)

ACK = PublishOptions(acknowledge=True)
RICH_PAYLOAD = {
    "text": "grüße ✓ 日本",
    "nested": {"list": [1, 2.5, None, True, False, -7], "empty": {}},
    "big": 2**53,
}
INVALID_TOPICS = ["a..b", "bad uri", "trailing."]


@pytest.mark.parametrize("transport,serializer", TRANSPORT_SERIALIZER_MATRIX)
async def test_autobahn_event_reaches_subscriber_with_args_and_kwargs(clients, transport, serializer):
    subscriber = await clients.autobahn(transport, serializer)
    publisher = await clients.autobahn(transport, serializer)
    events, subscription = await subscribe_collector(subscriber, "com.example.news")

    publication = await asyncio.wait_for(
        publisher.publish("com.example.news", 1, "two", payload=RICH_PAYLOAD, options=ACK),
        RECV_TIMEOUT,
    )
    [(args, kwargs, details)] = await events.wait_for(1)

    assert args == (1, "two")
    assert kwargs == {"payload": RICH_PAYLOAD}
    assert details.publication == publication.id
    assert details.subscription.id == subscription.id


@pytest.mark.parametrize("transport,serializer", TRANSPORT_SERIALIZER_MATRIX)
async def test_xconn_event_reaches_subscriber_with_args_and_kwargs(clients, transport, serializer):
    subscriber = await clients.xconn(transport, serializer)
    publisher = await clients.xconn(transport, serializer)
    events = Collector()

    async def on_event(event: xconn.types.Event) -> None:
        events.add(event)

    await asyncio.wait_for(subscriber.subscribe("io.xconn.news", on_event), RECV_TIMEOUT)
    await asyncio.wait_for(
        publisher.publish("io.xconn.news", [RICH_PAYLOAD, 3], {"k": "v"}, {"acknowledge": True}),
        RECV_TIMEOUT,
    )
    [event] = await events.wait_for(1)

    assert event.args == [RICH_PAYLOAD, 3]
    assert event.kwargs == {"k": "v"}


async def test_publisher_is_excluded_from_its_own_event_by_default(clients):
    publisher = await clients.autobahn("websocket", "json")
    other = await clients.autobahn("rawsocket", "msgpack")
    own_events, _ = await subscribe_collector(publisher, "com.example.chat")
    other_events, _ = await subscribe_collector(other, "com.example.chat")

    await publisher.publish("com.example.chat", "default", options=ACK)
    await other_events.wait_for(1)
    # Marker: delivered to the publisher too, so it also flushes anything published before it.
    await publisher.publish(
        "com.example.chat", "marker", options=PublishOptions(acknowledge=True, exclude_me=False)
    )
    await own_events.wait_for(1)

    assert [args for args, _, _ in own_events.items] == [("marker",)]
    assert [args for args, _, _ in other_events.items][0] == ("default",)


async def test_publish_with_exclude_me_false_delivers_event_to_publisher(clients):
    publisher = await clients.autobahn("rawsocket", "cbor")
    own_events, _ = await subscribe_collector(publisher, "com.example.echo")

    # Not acknowledged: Autobahn returns nothing to await, the event itself is the answer.
    publisher.publish("com.example.echo", "to myself", options=PublishOptions(exclude_me=False))
    [(args, _, _)] = await own_events.wait_for(1)

    assert args == ("to myself",)


async def test_acknowledged_publish_returns_publication_id(clients):
    publisher = await clients.autobahn("websocket", "cbor")

    publication = await asyncio.wait_for(
        publisher.publish("com.example.nobody_listens", options=ACK), RECV_TIMEOUT
    )

    assert isinstance(publication.id, int) and 1 <= publication.id <= 2**53


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "msgpack")])
async def test_only_acknowledged_publish_gets_published_reply(clients, transport, serializer):
    peer = await clients.raw(transport, serializer)
    await peer.join()

    silent = peer.next_request_id()
    await peer.send([PUBLISH, silent, {}, "com.example.quiet", [1]])
    acked = peer.next_request_id()
    await peer.send([PUBLISH, acked, {"acknowledge": True}, "com.example.quiet", [2]])
    reply = await peer.recv()

    assert reply[:2] == [PUBLISHED, acked], f"expected PUBLISHED for request {acked}: {reply!r}"
    assert isinstance(reply[2], int) and 1 <= reply[2] <= 2**53, reply


async def test_subscribers_of_the_same_topic_share_one_subscription_id(clients):
    first = await clients.autobahn("websocket", "json")
    second = await clients.autobahn("rawsocket", "cbor")
    third = await clients.raw("websocket", "msgpack")
    await third.join()

    first_events, first_sub = await subscribe_collector(first, "com.example.shared")
    second_events, second_sub = await subscribe_collector(second, "com.example.shared")
    request, subscribed = await third.request(SUBSCRIBE, {}, "com.example.shared")
    _, other_sub = await subscribe_collector(first, "com.example.other")

    assert subscribed[:2] == [SUBSCRIBED, request], subscribed
    assert first_sub.id == second_sub.id == subscribed[2]
    assert other_sub.id != first_sub.id

    publisher = await clients.autobahn("websocket", "msgpack")
    await publisher.publish("com.example.shared", "hello", options=ACK)
    [(_, _, first_details)] = await first_events.wait_for(1)
    [(_, _, second_details)] = await second_events.wait_for(1)
    raw_event = await third.recv()
    assert first_details.subscription.id == second_details.subscription.id == first_sub.id
    assert raw_event[0] == EVENT and raw_event[1] == first_sub.id, raw_event
    assert raw_event[4] == ["hello"], raw_event


async def test_unsubscribed_session_no_longer_receives_events(clients):
    subscriber = await clients.autobahn("rawsocket", "json")
    publisher = await clients.autobahn("websocket", "cbor")
    events, subscription = await subscribe_collector(subscriber, "com.example.leaving")
    markers, _ = await subscribe_collector(subscriber, "com.example.marker")

    await asyncio.wait_for(subscription.unsubscribe(), RECV_TIMEOUT)
    await publisher.publish("com.example.leaving", "after unsubscribe", options=ACK)
    await publisher.publish("com.example.marker", "marker", options=ACK)
    await markers.wait_for(1)

    assert events.items == []


async def test_unsubscribing_an_unknown_subscription_returns_no_such_subscription(clients):
    peer = await clients.raw("rawsocket", "cbor")
    await peer.join()

    request, reply = await peer.request(UNSUBSCRIBE, 987654)

    assert_error(reply, UNSUBSCRIBE, request, "wamp.error.no_such_subscription")


@pytest.mark.parametrize("topic", INVALID_TOPICS)
@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "cbor")])
async def test_subscribe_to_invalid_uri_returns_invalid_uri_and_session_stays_usable(
    clients, transport, serializer, topic
):
    peer = await clients.raw(transport, serializer)
    await peer.join()

    bad, reply = await peer.request(SUBSCRIBE, {}, topic)

    assert_error(reply, SUBSCRIBE, bad, "wamp.error.invalid_uri")
    good, reply = await peer.request(SUBSCRIBE, {}, "com.example.valid")
    assert reply[:2] == [SUBSCRIBED, good], f"session unusable after invalid_uri: {reply!r}"


@pytest.mark.parametrize("topic", INVALID_TOPICS)
@pytest.mark.parametrize("transport,serializer", [("websocket", "msgpack"), ("rawsocket", "json")])
async def test_publish_to_invalid_uri_returns_invalid_uri_and_session_stays_usable(
    clients, transport, serializer, topic
):
    peer = await clients.raw(transport, serializer)
    await peer.join()

    bad, reply = await peer.request(PUBLISH, {"acknowledge": True}, topic, ["x"])

    assert_error(reply, PUBLISH, bad, "wamp.error.invalid_uri")
    good, reply = await peer.request(PUBLISH, {"acknowledge": True}, "com.example.valid", ["x"])
    assert reply[:2] == [PUBLISHED, good], f"session unusable after invalid_uri: {reply!r}"


async def test_xconn_publish_to_invalid_uri_gets_invalid_uri_error(clients):
    """xconn does not validate URIs client-side, so the router's check is what it sees."""
    publisher = await clients.xconn("websocket", "cbor")

    with pytest.raises(Exception) as excinfo:
        await asyncio.wait_for(
            publisher.publish("bad uri", ["x"], options={"acknowledge": True}), RECV_TIMEOUT
        )

    assert getattr(excinfo.value, "message", None) == "wamp.error.invalid_uri", repr(excinfo.value)
    # ... and the session still works.
    await asyncio.wait_for(
        publisher.publish("io.xconn.fine", ["x"], options={"acknowledge": True}), RECV_TIMEOUT
    )


async def test_event_payload_is_delivered_to_every_subscriber_serializer(clients):
    publisher = await clients.autobahn("websocket", "json")
    subscribers = [
        await clients.autobahn(transport, serializer)
        for transport, serializer in TRANSPORT_SERIALIZER_MATRIX
    ]
    collectors = [
        (await subscribe_collector(session, "com.example.fanout"))[0] for session in subscribers
    ]

    await publisher.publish("com.example.fanout", RICH_PAYLOAD, n=1, options=ACK)

    for session, events in zip(subscribers, collectors):
        [(args, kwargs, _)] = await events.wait_for(1)
        assert (args, kwargs) == ((RICH_PAYLOAD,), {"n": 1}), (
            session.transport_name, session.serializer_name
        )



def sent_events(router) -> int:
    """``junction_messages_sent_total{type="EVENT"}`` from the router's ``/metrics``."""
    with urllib.request.urlopen(f"http://{router.host}:{router.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("junction_messages_sent_total{") and 'type="EVENT"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


async def test_every_event_written_is_counted_once_in_the_metrics(router, clients):
    # Events are counted per written batch, so a burst to two subscribers is the case to check.
    subscribers = [await clients.autobahn("websocket", "json"),
                   await clients.autobahn("rawsocket", "msgpack")]
    publisher = await clients.autobahn("websocket", "cbor")
    collectors = [(await subscribe_collector(s, "com.example.counted"))[0] for s in subscribers]
    before = sent_events(router)

    for i in range(200):
        publisher.publish("com.example.counted", i)
    for events in collectors:
        await events.wait_for(200)

    # The count is taken just after the flush that wrote the last event: wait for it, bounded.
    expected = before + 2 * 200
    for _ in range(100):
        if sent_events(router) >= expected:
            break
        await asyncio.sleep(0.02)
    assert sent_events(router) == expected
