"""The WAMP meta API end to end: session, registration and subscription meta procedures and
events, session killing and testaments (spec: advanced/meta_api_*.md, pubsub_testament.md).

Every test runs against a fresh router, so the sessions, registrations and subscriptions a
procedure reports are exactly the ones the test made. Tests that check that an event is *not*
delivered wait for a later event that the router must send after it instead of sleeping.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions

from junction_harness import (
    CALL,
    EVENT,
    GOODBYE,
    RECV_TIMEOUT,
    RESULT,
    SUBSCRIBE,
    SUBSCRIBED,
    UNREGISTER,
    UNREGISTERED,
    UNSUBSCRIBE,
    UNSUBSCRIBED,
    WELCOME,
    Collector,
    assert_error,
    subscribe_collector,
)

SESSION_EVENTS = ("wamp.session.on_join", "wamp.session.on_leave")
REGISTRATION_EVENTS = (
    "wamp.registration.on_create",
    "wamp.registration.on_register",
    "wamp.registration.on_unregister",
    "wamp.registration.on_delete",
)
SUBSCRIPTION_EVENTS = (
    "wamp.subscription.on_create",
    "wamp.subscription.on_subscribe",
    "wamp.subscription.on_unsubscribe",
    "wamp.subscription.on_delete",
)
TESTAMENT_TOPIC = "com.example.testament"


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


async def call(session, procedure: str, *args, **kwargs):
    """An Autobahn call, bounded by RECV_TIMEOUT."""
    return await asyncio.wait_for(session.call(procedure, *args, **kwargs), RECV_TIMEOUT)


async def call_error(session, procedure: str, *args, **kwargs) -> ApplicationError:
    """The error an Autobahn call fails with; fails the test if the call succeeds."""
    try:
        result = await call(session, procedure, *args, **kwargs)
    except ApplicationError as e:
        return e
    pytest.fail(f"{procedure} succeeded with {result!r}")


def session_id(session) -> int:
    return session.joined.result().session


async def left(session):
    """The CloseDetails of an Autobahn session once it has left (GOODBYE from the router)."""
    return await asyncio.wait_for(asyncio.shield(session.left), RECV_TIMEOUT)


async def watch(session, topics) -> Collector:
    """Subscribes ``session`` to ``topics``; events are collected as (topic, args) in order."""
    events = Collector()
    for topic in topics:
        def on_event(*args, _topic=topic, **kwargs):
            events.add((_topic, list(args)))

        await asyncio.wait_for(session.subscribe(on_event, topic), RECV_TIMEOUT)
    return events


async def raw_call(peer, procedure: str, args: list | None = None, kwargs: dict | None = None):
    """A CALL written by hand; returns (request id, the router's reply)."""
    return await peer.request(CALL, {}, procedure, args or [], kwargs or {})


def about(args: list) -> int:
    """The session a meta event is about: its first argument (the details of on_join)."""
    return args[0]["session"] if isinstance(args[0], dict) else args[0]


def assert_recent_iso8601(value) -> None:
    """``created`` fields: an ISO 8601 timestamp of a moment during this test run."""
    assert isinstance(value, str), value
    created = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert created.tzinfo is not None, f"timestamp without time zone: {value!r}"
    age = (datetime.now(timezone.utc) - created).total_seconds()
    assert -5 < age < 120, f"timestamp {value!r} is not from this test run"


# ------------------------------------------------------------------------------------------------
# Feature announcement
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "cbor")])
async def test_welcome_announces_meta_api_features_of_broker_and_dealer(
    clients, transport, serializer
):
    peer = await clients.raw(transport, serializer)

    welcome = await peer.hello()

    assert welcome[0] == WELCOME, welcome
    roles = welcome[2]["roles"]
    broker, dealer = roles["broker"]["features"], roles["dealer"]["features"]
    for feature in ("session_meta_api", "subscription_meta_api"):
        assert broker.get(feature) is True, f"broker features lack {feature}: {broker}"
    for feature in ("session_meta_api", "registration_meta_api", "testament_meta_api"):
        assert dealer.get(feature) is True, f"dealer features lack {feature}: {dealer}"


# ------------------------------------------------------------------------------------------------
# wamp.session.count / list / get
# ------------------------------------------------------------------------------------------------


async def test_session_count_and_list_report_every_session_of_the_realm(clients):
    first = await clients.autobahn("websocket", "json")
    second = await clients.autobahn("rawsocket", "msgpack")
    third = await clients.raw("websocket", "cbor")
    third_id = await third.join()

    count = await call(first, "wamp.session.count")
    listed = await call(second, "wamp.session.list")

    assert count == 3
    assert sorted(listed) == sorted([session_id(first), session_id(second), third_id])


async def test_session_count_and_list_only_report_sessions_with_a_listed_authrole(clients):
    caller = await clients.autobahn("websocket", "cbor")
    other = await clients.autobahn("rawsocket", "json")
    everyone = sorted([session_id(caller), session_id(other)])

    assert await call(caller, "wamp.session.count", ["anonymous"]) == 2
    assert sorted(await call(caller, "wamp.session.list", ["anonymous"])) == everyone
    assert await call(caller, "wamp.session.count", ["com.example.nobody"]) == 0
    assert await call(caller, "wamp.session.list", ["com.example.nobody"]) == []
    assert await call(caller, "wamp.session.count", ["com.example.nobody", "anonymous"]) == 2
    assert await call(caller, "wamp.session.count", []) == 0


@pytest.mark.parametrize(
    "transport,serializer", [("websocket", "json"), ("rawsocket", "msgpack"), ("websocket", "cbor")]
)
async def test_session_get_describes_identity_and_transport_of_the_session(
    clients, transport, serializer
):
    described = await clients.autobahn(transport, serializer)
    asker = await clients.autobahn("websocket", "json")
    joined = described.joined.result()
    host, port = described._transport.transport.get_extra_info("sockname")[:2]

    details = await call(asker, "wamp.session.get", joined.session)

    assert details["session"] == joined.session
    assert details["authid"] == joined.authid
    assert details["authrole"] == "anonymous"
    assert details["authmethod"] == "anonymous"
    assert details["authprovider"] == joined.authprovider
    transport_info = details["transport"]
    assert isinstance(transport_info, dict), details
    assert transport_info["type"] == transport, transport_info
    assert transport_info["serializer"] == serializer, transport_info
    assert transport_info["peer"] == f"{host}:{port}", transport_info


async def test_session_get_of_unknown_session_fails_with_no_such_session(clients):
    asker = await clients.autobahn("rawsocket", "cbor")

    error = await call_error(asker, "wamp.session.get", 4242424242)

    assert error.error == "wamp.error.no_such_session"


# ------------------------------------------------------------------------------------------------
# Realms are separate
# ------------------------------------------------------------------------------------------------


@pytest.mark.realms("realm1", "realm2")
async def test_session_procedures_never_see_a_session_of_another_realm(clients):
    here = await clients.autobahn("websocket", "json", realm="realm1")
    elsewhere = await clients.autobahn("rawsocket", "cbor", realm="realm2")
    elsewhere_id = session_id(elsewhere)
    elsewhere_authid = elsewhere.joined.result().authid

    assert await call(here, "wamp.session.count") == 1
    assert await call(here, "wamp.session.list") == [session_id(here)]
    assert (await call_error(here, "wamp.session.get", elsewhere_id)).error == (
        "wamp.error.no_such_session"
    )
    assert (await call_error(here, "wamp.session.kill", elsewhere_id)).error == (
        "wamp.error.no_such_session"
    )
    assert await call(here, "wamp.session.kill_by_authid", elsewhere_authid) == []
    assert await call(here, "wamp.session.kill_by_authrole", "anonymous") == 0
    assert await call(here, "wamp.session.kill_all") == 0
    # The realm2 session was not touched by any of it.
    assert await call(elsewhere, "wamp.session.list") == [elsewhere_id]
    assert not elsewhere.left.done()


@pytest.mark.realms("realm1", "realm2")
async def test_meta_events_of_another_realm_are_never_delivered(clients):
    watcher = await clients.autobahn("websocket", "msgpack", realm="realm1")
    watched = SESSION_EVENTS + REGISTRATION_EVENTS + SUBSCRIPTION_EVENTS
    events = await watch(watcher, watched)

    async def come_and_go(realm):
        """Joins ``realm``, registers, subscribes and leaves: every kind of meta event."""
        session = await clients.autobahn("websocket", "json", realm=realm)
        await asyncio.wait_for(session.register(lambda: None, "com.example.meta.visitor"),
                               RECV_TIMEOUT)
        await subscribe_collector(session, "com.example.meta.visitor")
        session.leave()
        await left(session)
        return session_id(session)

    elsewhere_id = await come_and_go("realm2")
    # The same in realm1 afterwards: the watcher gets its events after any of the realm2 ones.
    here_id = await come_and_go("realm1")
    await events.wait_until(
        lambda items: ("wamp.session.on_leave", here_id) in [(t, about(a)) for t, a in items],
        "on_leave of the realm1 session",
    )

    sessions = {about(args) for _, args in events.items}
    assert elsewhere_id not in sessions, f"realm1 watcher saw realm2 events: {events.items!r}"
    assert {topic for topic, args in events.items if about(args) == here_id} == set(watched)


# ------------------------------------------------------------------------------------------------
# wamp.session.on_join / on_leave
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "cbor")])
async def test_watcher_sees_on_join_then_on_leave_of_session_that_drops_without_goodbye(
    clients, transport, serializer
):
    watcher = await clients.autobahn("websocket", "json")
    events = await watch(watcher, SESSION_EVENTS)

    dropper = await clients.autobahn(transport, serializer)
    joined = dropper.joined.result()
    host, port = dropper._transport.transport.get_extra_info("sockname")[:2]
    await events.wait_for(1)
    dropper.drop_transport()
    await events.wait_for(2)

    (join_topic, join_args), (leave_topic, leave_args) = events.items
    assert join_topic == "wamp.session.on_join"
    assert len(join_args) == 1 and isinstance(join_args[0], dict), join_args
    details = join_args[0]
    assert details["session"] == joined.session
    assert details["authid"] == joined.authid
    assert details["authrole"] == "anonymous"
    assert details["authmethod"] == "anonymous"
    assert details["authprovider"] == joined.authprovider
    assert details["transport"]["type"] == transport, details
    assert details["transport"]["serializer"] == serializer, details
    assert details["transport"]["peer"] == f"{host}:{port}", details
    assert leave_topic == "wamp.session.on_leave"
    assert leave_args == [joined.session, joined.authid, "anonymous"]


async def test_raw_session_closing_its_socket_without_goodbye_is_announced_by_on_leave(clients):
    watcher = await clients.autobahn("rawsocket", "msgpack")
    events = await watch(watcher, ["wamp.session.on_leave"])
    dropper = await clients.raw("rawsocket", "json")
    dropper_id = await dropper.join()
    authid = (await call(watcher, "wamp.session.get", dropper_id))["authid"]

    dropper.abort()
    await events.wait_for(1)

    assert events.items == [("wamp.session.on_leave", [dropper_id, authid, "anonymous"])]
    assert dropper_id not in await call(watcher, "wamp.session.list")


# ------------------------------------------------------------------------------------------------
# wamp.session.kill and friends
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "cbor")])
async def test_kill_sends_goodbye_with_reason_and_message_and_removes_the_victim(
    clients, transport, serializer
):
    killer = await clients.autobahn("websocket", "msgpack")
    victim = await clients.autobahn(transport, serializer)
    victim_id = session_id(victim)
    leaves = await watch(killer, ["wamp.session.on_leave"])

    # The router publishes on_leave while it runs the kill, so the event may come first.
    result = await call(killer, "wamp.session.kill", victim_id,
                        reason="com.example.maintenance", message="back in five minutes")
    goodbye = await left(victim)
    await leaves.wait_for(1)

    assert result is None
    assert goodbye.reason == "com.example.maintenance"
    assert goodbye.message == "back in five minutes"
    assert leaves.items == [("wamp.session.on_leave",
                             [victim_id, victim.joined.result().authid, "anonymous"])]
    assert await call(killer, "wamp.session.list") == [session_id(killer)]
    assert (await call_error(killer, "wamp.session.get", victim_id)).error == (
        "wamp.error.no_such_session"
    )


async def test_kill_goodbye_frame_carries_reason_and_message_in_details(clients):
    killer = await clients.autobahn("websocket", "json")
    victim = await clients.raw("rawsocket", "msgpack")
    victim_id = await victim.join()

    await call(killer, "wamp.session.kill", victim_id, reason="com.example.bye", message="so long")
    goodbye = await victim.recv()

    assert goodbye == [GOODBYE, {"message": "so long"}, "com.example.bye"]


async def test_kill_without_reason_sends_goodbye_wamp_close_killed_without_message(clients):
    killer = await clients.autobahn("rawsocket", "json")
    victim = await clients.raw("websocket", "cbor")
    victim_id = await victim.join()

    await call(killer, "wamp.session.kill", victim_id)
    goodbye = await victim.recv()

    assert goodbye[0] == GOODBYE and goodbye[2] == "wamp.close.killed", goodbye
    assert "message" not in goodbye[1], goodbye


async def test_kill_of_own_session_fails_with_no_such_session(clients):
    caller = await clients.autobahn("websocket", "json")

    error = await call_error(caller, "wamp.session.kill", session_id(caller))

    assert error.error == "wamp.error.no_such_session"
    assert await call(caller, "wamp.session.count") == 1


async def test_kill_of_unknown_session_fails_with_no_such_session(clients):
    caller = await clients.autobahn("rawsocket", "msgpack")

    error = await call_error(caller, "wamp.session.kill", 4242424242, reason="com.example.x")

    assert error.error == "wamp.error.no_such_session"


@pytest.mark.parametrize("reason", ["not a uri", "com..example", ""], ids=["space", "empty-part", "empty"])
@pytest.mark.parametrize(
    "procedure,argument",
    [
        ("wamp.session.kill", "victim_id"),
        ("wamp.session.kill_by_authid", "victim_authid"),
        ("wamp.session.kill_by_authrole", "anonymous"),
        ("wamp.session.kill_all", None),
    ],
)
async def test_kill_with_invalid_reason_fails_with_invalid_uri_and_kills_nobody(
    clients, procedure, argument, reason
):
    caller = await clients.autobahn("websocket", "json")
    victim = await clients.autobahn("rawsocket", "cbor")
    values = {"victim_id": session_id(victim), "victim_authid": victim.joined.result().authid,
              "anonymous": "anonymous"}
    args = [] if argument is None else [values[argument]]

    error = await call_error(caller, procedure, *args, reason=reason)

    assert error.error == "wamp.error.invalid_uri"
    assert await call(caller, "wamp.session.count") == 2
    assert not victim.left.done()


async def test_kill_by_authid_kills_that_authid_and_returns_the_killed_session_ids(clients):
    killer = await clients.autobahn("websocket", "json")
    victim = await clients.autobahn("rawsocket", "msgpack")
    bystander = await clients.autobahn("websocket", "cbor")
    victim_authid = victim.joined.result().authid

    killed = await call(killer, "wamp.session.kill_by_authid", victim_authid,
                        reason="com.example.revoked", message="credentials revoked")
    goodbye = await left(victim)

    assert killed == [session_id(victim)]
    assert (goodbye.reason, goodbye.message) == ("com.example.revoked", "credentials revoked")
    assert sorted(await call(killer, "wamp.session.list")) == sorted(
        [session_id(killer), session_id(bystander)]
    )


async def test_kill_by_authid_of_own_authid_excludes_the_caller(clients):
    caller = await clients.autobahn("rawsocket", "json")

    killed = await call(caller, "wamp.session.kill_by_authid", caller.joined.result().authid)

    assert killed == []
    assert await call(caller, "wamp.session.count") == 1


async def test_kill_by_authrole_kills_other_sessions_of_that_role_and_returns_their_count(clients):
    killer = await clients.autobahn("websocket", "msgpack")
    victims = [await clients.autobahn("websocket", "json"),
               await clients.autobahn("rawsocket", "cbor")]

    assert await call(killer, "wamp.session.kill_by_authrole", "com.example.nobody") == 0
    count = await call(killer, "wamp.session.kill_by_authrole", "anonymous",
                       reason="com.example.role_removed")
    goodbyes = [await left(victim) for victim in victims]

    assert count == 2
    assert [g.reason for g in goodbyes] == ["com.example.role_removed"] * 2
    assert await call(killer, "wamp.session.list") == [session_id(killer)]


async def test_kill_all_returns_count_and_leaves_the_caller_connected_and_able_to_call(clients):
    caller = await clients.autobahn("rawsocket", "json")
    victims = [await clients.autobahn("websocket", "json"),
               await clients.autobahn("rawsocket", "msgpack")]
    raw_victim = await clients.raw("websocket", "cbor")
    await raw_victim.join()

    count = await call(caller, "wamp.session.kill_all", message="closing time")
    goodbyes = [await left(victim) for victim in victims]
    raw_goodbye = await raw_victim.recv()

    assert count == 3
    assert [(g.reason, g.message) for g in goodbyes] == [("wamp.close.killed", "closing time")] * 2
    assert raw_goodbye == [GOODBYE, {"message": "closing time"}, "wamp.close.killed"]
    assert await call(caller, "wamp.session.list") == [session_id(caller)]
    assert await call(caller, "wamp.session.count") == 1
    assert not caller.left.done()


# ------------------------------------------------------------------------------------------------
# Testaments
# ------------------------------------------------------------------------------------------------


async def add_testament(session, label: str, scope: str | None = None) -> None:
    """A testament on TESTAMENT_TOPIC whose args and kwargs both name ``label``."""
    scope_kw = {} if scope is None else {"scope": scope}
    result = await call(session, "wamp.session.add_testament", TESTAMENT_TOPIC,
                        [label, 1], {"label": label}, **scope_kw)
    assert result is None, f"add_testament returned {result!r}"


def labels_of(events: Collector) -> list[str]:
    """The labels of the testament events received, checking each event's args and kwargs."""
    labels = []
    for args, kwargs, _details in events.items:
        assert list(args) == [kwargs["label"], 1], (args, kwargs)
        labels.append(kwargs["label"])
    return labels


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "msgpack")])
async def test_testaments_fire_on_abrupt_disconnect_detached_scope_first_each_in_order(
    clients, transport, serializer
):
    watcher = await clients.autobahn("websocket", "cbor")
    events, _ = await subscribe_collector(watcher, TESTAMENT_TOPIC)
    testator = await clients.autobahn(transport, serializer)
    await add_testament(testator, "destroyed-1")
    await add_testament(testator, "detached-1", scope="detached")
    await add_testament(testator, "destroyed-2", scope="destroyed")
    await add_testament(testator, "detached-2", scope="detached")

    testator.drop_transport()
    await events.wait_for(4)

    assert labels_of(events) == ["detached-1", "detached-2", "destroyed-1", "destroyed-2"]


async def test_testaments_fire_when_the_session_leaves_with_goodbye(clients):
    watcher = await clients.autobahn("rawsocket", "json")
    events, _ = await subscribe_collector(watcher, TESTAMENT_TOPIC)
    testator = await clients.autobahn("websocket", "json")
    await add_testament(testator, "farewell")

    testator.leave()
    await left(testator)
    await events.wait_for(1)

    assert labels_of(events) == ["farewell"]


async def test_testaments_are_not_published_while_the_session_lives(clients):
    watcher = await clients.autobahn("websocket", "json")
    events, _ = await subscribe_collector(watcher, TESTAMENT_TOPIC)
    testator = await clients.autobahn("rawsocket", "cbor")
    await add_testament(testator, "pending")
    # An ordinary event from the testator, published after add_testament returned, is the
    # first thing the watcher receives.
    await asyncio.wait_for(testator.publish(TESTAMENT_TOPIC, "live", 1, label="live",
                                            options=PublishOptions(acknowledge=True)),
                           RECV_TIMEOUT)
    await events.wait_for(1)

    assert labels_of(events) == ["live"]


# Flushed testaments would be published before the ones added after them (testaments of one
# scope are published in the order they were added), so waiting for the later ones is enough.
@pytest.mark.parametrize(
    "flush_kwargs,flushed,kept",
    [({}, "destroyed", "detached"),
     ({"scope": "destroyed"}, "destroyed", "detached"),
     ({"scope": "detached"}, "detached", "destroyed")],
    ids=["default-scope", "destroyed", "detached"],
)
async def test_flush_testaments_removes_only_the_testaments_of_its_scope(
    clients, flush_kwargs, flushed, kept
):
    watcher = await clients.autobahn("websocket", "msgpack")
    events, _ = await subscribe_collector(watcher, TESTAMENT_TOPIC)
    testator = await clients.autobahn("rawsocket", "json")
    await add_testament(testator, f"{flushed}-flushed", scope=flushed)
    await add_testament(testator, f"{kept}-kept", scope=kept)

    assert await call(testator, "wamp.session.flush_testaments", **flush_kwargs) is None
    await add_testament(testator, f"{flushed}-added-after-flush", scope=flushed)
    testator.drop_transport()
    await events.wait_for(2)

    published = {scope: label for scope, label in [(kept, f"{kept}-kept"),
                                                    (flushed, f"{flushed}-added-after-flush")]}
    assert labels_of(events) == [published["detached"], published["destroyed"]]


async def test_add_testament_with_unknown_scope_is_refused(clients):
    testator = await clients.autobahn("websocket", "json")

    error = await call_error(testator, "wamp.session.add_testament", TESTAMENT_TOPIC, [], {},
                             scope="forever")

    assert error.error == "wamp.error.invalid_argument"


# ------------------------------------------------------------------------------------------------
# wamp.registration.* and wamp.subscription.* procedures
# ------------------------------------------------------------------------------------------------

# One URI per match policy. A call to (or event on) com.example.meta.exact matches all three.
URIS_BY_POLICY = {
    "exact": "com.example.meta.exact",
    "prefix": "com.example.meta",
    "wildcard": "com.example..exact",
}
KINDS = ["registration", "subscription"]


async def attach(peer, kind: str, uri: str, options: dict | None = None) -> int:
    """Registers ``uri`` (kind "registration") or subscribes to it; returns the id."""
    if kind == "registration":
        return await peer.register(uri, options)
    return await peer.subscribe(uri, options)


async def attach_by_policy(clients, kind: str) -> dict[str, int]:
    """A new session registers (or subscribes to) URIS_BY_POLICY; returns {policy: id}."""
    peer = await clients.raw("websocket", "json")
    await peer.join()
    return {policy: await attach(peer, kind, uri, {"match": policy})
            for policy, uri in URIS_BY_POLICY.items()}


@pytest.mark.parametrize("kind", KINDS)
async def test_list_groups_ids_by_match_policy(clients, kind):
    ids = await attach_by_policy(clients, kind)
    asker = await clients.autobahn("rawsocket", "cbor")

    lists = await call(asker, f"wamp.{kind}.list")

    assert lists == {policy: [attached] for policy, attached in ids.items()}


@pytest.mark.parametrize("kind", KINDS)
async def test_lookup_finds_the_id_of_a_uri_under_the_given_match_policy_only(clients, kind):
    ids = await attach_by_policy(clients, kind)
    asker = await clients.autobahn("websocket", "msgpack")

    async def lookup(*args):
        return await call(asker, f"wamp.{kind}.lookup", *args)

    assert await lookup("com.example.meta.exact") == ids["exact"]
    assert await lookup("com.example.meta.exact", {"match": "exact"}) == ids["exact"]
    assert await lookup("com.example.meta", {"match": "prefix"}) == ids["prefix"]
    assert await lookup("com.example..exact", {"match": "wildcard"}) == ids["wildcard"]
    # lookup is not match: it only finds what was registered/subscribed under that URI and policy.
    assert await lookup("com.example.meta") is None
    assert await lookup("com.example.meta.exact", {"match": "prefix"}) is None
    assert await lookup("com.example.unknown") is None


async def test_registration_match_returns_the_best_matching_registration(clients):
    ids = await attach_by_policy(clients, "registration")
    asker = await clients.autobahn("websocket", "msgpack")

    async def best(procedure):
        return await call(asker, "wamp.registration.match", procedure)

    assert await best("com.example.meta.exact") == ids["exact"]
    assert await best("com.example.meta.anything") == ids["prefix"]
    assert await best("com.example.x.exact") == ids["wildcard"]
    assert await best("org.example.none") is None


async def test_subscription_match_returns_every_matching_subscription_or_null(clients):
    ids = await attach_by_policy(clients, "subscription")
    asker = await clients.autobahn("websocket", "json")

    async def matching(topic):
        return await call(asker, "wamp.subscription.match", topic)

    assert sorted(await matching("com.example.meta.exact")) == sorted(ids.values())
    assert await matching("com.example.meta.other") == [ids["prefix"]]
    assert await matching("com.example.x.exact") == [ids["wildcard"]]
    assert await matching("org.example.none") is None


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "cbor")])
async def test_registration_get_returns_registration_details(clients, transport, serializer):
    callee = await clients.autobahn("websocket", "json")
    registration = await asyncio.wait_for(
        callee.register(lambda: None, "com.example.meta.described"), RECV_TIMEOUT
    )
    asker = await clients.autobahn(transport, serializer)

    details = await call(asker, "wamp.registration.get", registration.id)

    assert_recent_iso8601(details.pop("created"))
    assert details == {"id": registration.id, "uri": "com.example.meta.described",
                       "match": "exact", "invoke": "single"}


@pytest.mark.parametrize("transport,serializer", [("websocket", "cbor"), ("rawsocket", "json")])
async def test_subscription_get_returns_subscription_details(clients, transport, serializer):
    subscriber = await clients.autobahn("websocket", "json")
    _, subscription = await subscribe_collector(subscriber, "com.example.meta", match="prefix")
    asker = await clients.autobahn(transport, serializer)

    details = await call(asker, "wamp.subscription.get", subscription.id)

    assert_recent_iso8601(details.pop("created"))
    assert details == {"id": subscription.id, "uri": "com.example.meta", "match": "prefix"}


@pytest.mark.parametrize(
    "kind,list_procedure,count_procedure",
    [
        ("registration", "wamp.registration.list_callees", "wamp.registration.count_callees"),
        ("subscription", "wamp.subscription.list_subscribers",
         "wamp.subscription.count_subscribers"),
    ],
    ids=KINDS,
)
async def test_sessions_attached_to_a_shared_id_are_listed_and_counted(
    clients, kind, list_procedure, count_procedure
):
    first = await clients.raw("websocket", "json")
    second = await clients.raw("rawsocket", "msgpack")
    first_id, second_id = await first.join(), await second.join()
    # A registration is shared when its callees ask for it; a subscription always is.
    shared = {"invoke": "roundrobin"} if kind == "registration" else {}
    attached = await attach(first, kind, "com.example.meta.crowd", shared)
    assert await attach(second, kind, "com.example.meta.crowd", shared) == attached
    asker = await clients.autobahn("websocket", "cbor")

    sessions = await call(asker, list_procedure, attached)
    count = await call(asker, count_procedure, attached)

    assert sorted(sessions) == sorted([first_id, second_id])
    assert count == 2


@pytest.mark.parametrize(
    "procedure,error",
    [(f"wamp.registration.{name}", "wamp.error.no_such_registration")
     for name in ("get", "list_callees", "count_callees")]
    + [(f"wamp.subscription.{name}", "wamp.error.no_such_subscription")
       for name in ("get", "list_subscribers", "count_subscribers")],
)
async def test_procedure_with_unknown_id_fails_with_no_such_registration_or_subscription(
    clients, procedure, error
):
    asker = await clients.autobahn("rawsocket", "json")

    assert (await call_error(asker, procedure, 4242424242)).error == error


async def test_meta_procedure_with_unknown_id_answers_error_frame_for_that_call(clients):
    """The same errors on the wire, for a client that does not go through a library."""
    peer = await clients.raw("rawsocket", "cbor")
    await peer.join()

    for procedure, error in [
        ("wamp.session.get", "wamp.error.no_such_session"),
        ("wamp.registration.get", "wamp.error.no_such_registration"),
        ("wamp.subscription.get", "wamp.error.no_such_subscription"),
    ]:
        request, reply = await raw_call(peer, procedure, [4242424242])
        assert_error(reply, CALL, request, error)
    request, reply = await raw_call(peer, "wamp.session.count")
    assert reply == [RESULT, request, {}, [1]]


# A meta procedure's arguments are application payload: a bad value is the call's error, not a
# protocol violation that ends the caller's session.
@pytest.mark.parametrize(
    "procedure,args,kwargs",
    [
        ("wamp.session.get", ["bob"], {}),
        ("wamp.session.count", ["anonymous"], {}),
        ("wamp.session.kill_by_authid", [5], {}),
        ("wamp.registration.lookup", ["com.example.meta", {"match": "fuzzy"}], {}),
        ("wamp.registration.lookup", ["com.example.meta", {"invoke": "bogus"}], {}),
        ("wamp.subscription.lookup", ["com.example.meta", {"match": "fuzzy"}], {}),
        ("wamp.session.add_testament", [TESTAMENT_TOPIC, [], {}],
         {"publish_options": {"exclude": "nobody"}}),
    ],
    ids=["get-session-name", "count-role-string", "kill-authid-number", "registration-lookup-match",
         "registration-lookup-invoke", "subscription-lookup-match", "testament-publish-options"],
)
async def test_meta_call_with_invalid_argument_fails_with_invalid_argument_and_session_survives(
    clients, procedure, args, kwargs
):
    peer = await clients.raw("websocket", "json")
    await peer.join()

    request, reply = await raw_call(peer, procedure, args, kwargs)

    assert_error(reply, CALL, request, "wamp.error.invalid_argument")
    request, reply = await raw_call(peer, "wamp.session.count")
    assert reply == [RESULT, request, {}, [1]], f"session unusable afterwards: {reply!r}"


# ------------------------------------------------------------------------------------------------
# Registration and subscription meta events
# ------------------------------------------------------------------------------------------------


# What the spec calls attaching and detaching a session, per kind.
ATTACH_EVENT = {"registration": "on_register", "subscription": "on_subscribe"}
DETACH_EVENT = {"registration": "on_unregister", "subscription": "on_unsubscribe"}


async def detach(peer, kind: str, attached: int) -> None:
    """UNREGISTER (kind "registration") or UNSUBSCRIBE, and expect it to succeed."""
    request_type, reply_type = (
        (UNREGISTER, UNREGISTERED) if kind == "registration" else (UNSUBSCRIBE, UNSUBSCRIBED)
    )
    request, reply = await peer.request(request_type, attached)
    assert reply[:2] == [reply_type, request], reply


@pytest.mark.parametrize("kind", KINDS)
async def test_meta_events_follow_create_attach_detach_delete_with_spec_payloads(clients, kind):
    watcher = await clients.autobahn("websocket", "json")
    topics = [f"wamp.{kind}.{name}"
              for name in ("on_create", ATTACH_EVENT[kind], DETACH_EVENT[kind], "on_delete")]
    events = await watch(watcher, topics)
    first = await clients.raw("rawsocket", "cbor")
    second = await clients.raw("websocket", "msgpack")
    first_id, second_id = await first.join(), await second.join()

    def about_them(items):
        # Subscribing the watcher to subscription meta topics causes events too; leave those out.
        return [(topic, args) for topic, args in items if args[0] in (first_id, second_id)]

    shared = {"invoke": "roundrobin"} if kind == "registration" else {}
    attached = await attach(first, kind, "com.example.meta.watched", shared)
    assert await attach(second, kind, "com.example.meta.watched", shared) == attached
    await detach(second, kind, attached)
    await detach(first, kind, attached)
    await events.wait_until(lambda items: len(about_them(items)) >= 6,
                            "6 events about the two sessions")

    (create_topic, (create_session, details)), *rest = about_them(events.items)
    assert (create_topic, create_session) == (f"wamp.{kind}.on_create", first_id)
    assert_recent_iso8601(details.pop("created"))
    expected_details = {"id": attached, "uri": "com.example.meta.watched", "match": "exact"}
    if kind == "registration":
        expected_details["invoke"] = "roundrobin"
    assert details == expected_details
    attach_topic, detach_topic = f"wamp.{kind}.{ATTACH_EVENT[kind]}", f"wamp.{kind}.{DETACH_EVENT[kind]}"
    assert rest == [
        (attach_topic, [first_id, attached]),
        (attach_topic, [second_id, attached]),
        (detach_topic, [second_id, attached]),
        (detach_topic, [first_id, attached]),
        (f"wamp.{kind}.on_delete", [first_id, attached]),
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_session_that_drops_is_detached_then_its_registration_or_subscription_deleted(
    clients, kind
):
    watcher = await clients.autobahn("rawsocket", "json")
    events = await watch(watcher, [f"wamp.{kind}.{DETACH_EVENT[kind]}", f"wamp.{kind}.on_delete"])
    dropper = await clients.raw("websocket", "cbor")
    dropper_id = await dropper.join()
    attached = await attach(dropper, kind, "com.example.meta.orphaned")

    dropper.abort()
    await events.wait_for(2)

    assert events.items == [
        (f"wamp.{kind}.{DETACH_EVENT[kind]}", [dropper_id, attached]),
        (f"wamp.{kind}.on_delete", [dropper_id, attached]),
    ]
    assert await call(watcher, f"wamp.{kind}.lookup", "com.example.meta.orphaned") is None


# Subscribing to wamp.subscription.on_create or on_subscribe itself causes an event on that very
# subscription. Basic profile, ordering guarantees: "if Subscriber A subscribes to Topic 1, the
# SUBSCRIBED message will be sent by the Broker to Subscriber A before any EVENT message for
# Topic 1" (a client drops an EVENT for a subscription id it does not know yet).
@pytest.mark.parametrize("topic", SUBSCRIPTION_EVENTS[:2])
async def test_subscribed_is_sent_before_the_event_its_own_subscription_causes(clients, topic):
    peer = await clients.raw("websocket", "json")
    peer_id = await peer.join()

    request = peer.next_request_id()
    await peer.send([SUBSCRIBE, request, {}, topic])
    first = await peer.recv()
    second = await peer.recv()

    assert first[:2] == [SUBSCRIBED, request], (
        f"the first message after SUBSCRIBE {topic} must be SUBSCRIBED, got {first!r}"
    )
    assert second[:2] == [EVENT, first[2]], second
    assert second[4][0] == peer_id, second
