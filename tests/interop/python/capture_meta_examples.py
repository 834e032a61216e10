"""Capture the meta API's wire traffic, for the examples in docs/meta-api.md.

Not a test: it starts a router, has a few hand-written JSON peers call every meta procedure and
watch every meta topic (then a second router, configured to keep an event history, for
wamp.subscription.get_events), and prints each exchange as the frames that went over the wire
(``->`` from a client, ``<-`` from the router), grouped in Markdown sections. Run it from the
repository root after building the router:

    .venv/bin/python tests/interop/python/capture_meta_examples.py [--out FILE]

``JUNCTION_BIN`` selects the binary as in the test suites. Ids and timestamps differ from run to
run; everything else should match the documentation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from junction_harness import (
    ABORT,
    CALL,
    ERROR,
    REGISTER,
    REGISTERED,
    EVENT,
    GOODBYE,
    PUBLISH,
    PUBLISHED,
    RAW_CLIENT_ROLES,
    REALM,
    RESULT,
    SUBSCRIBE,
    SUBSCRIBED,
    UNREGISTER,
    UNREGISTERED,
    UNSUBSCRIBE,
    UNSUBSCRIBED,
    RawPeer,
    RouterProcess,
    junction_binary,
)

META_TOPICS = [
    "wamp.session.on_join",
    "wamp.session.on_leave",
    "wamp.registration.on_create",
    "wamp.registration.on_register",
    "wamp.registration.on_unregister",
    "wamp.registration.on_delete",
    "wamp.subscription.on_create",
    "wamp.subscription.on_subscribe",
    "wamp.subscription.on_unsubscribe",
    "wamp.subscription.on_delete",
]
TESTAMENT_TOPIC = "com.example.status"
KINDS = {
    "registration": {
        "messages": ((REGISTER, REGISTERED), (UNREGISTER, UNREGISTERED)),
        "shared": {"invoke": "roundrobin"},
        "uri": "com.example.add",
        "matched": "com.example.add",
        "attach_event": "on_register",
        "detach_event": "on_unregister",
        "sessions": ("list_callees", "count_callees"),
    },
    "subscription": {
        "messages": ((SUBSCRIBE, SUBSCRIBED), (UNSUBSCRIBE, UNSUBSCRIBED)),
        "shared": {},
        "uri": "com.example.sum",
        "matched": "com.example.sum",
        "attach_event": "on_subscribe",
        "detach_event": "on_unsubscribe",
        "sessions": ("list_subscribers", "count_subscribers"),
    },
}


def frame(message: list) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class Capture:
    """Collects Markdown sections: a title, an optional note, and the frames of one exchange."""

    def __init__(self):
        self.sections: list[str] = []

    def add(self, title: str, lines: list[str], note: str = "") -> None:
        text = f"### {title}\n\n"
        if note:
            text += f"{note}\n\n"
        text += "```\n" + "\n".join(lines) + "\n```\n"
        self.sections.append(text)

    def markdown(self) -> str:
        return "\n".join(self.sections)


class Peer:
    """A named JSON peer that logs what it sends and receives."""

    def __init__(self, name: str, raw: RawPeer, welcome: list):
        self.name = name
        self.raw = raw
        self.session = welcome[1]
        self.authid = welcome[2]["authid"]

    @classmethod
    async def join(cls, router, name: str, transport: str = "websocket",
                   details: dict | None = None, realm: str = REALM) -> "Peer":
        """Joins ``realm``; ``details`` are extra HELLO.Details (roles default to
        RAW_CLIENT_ROLES, the four client roles without features)."""
        raw = await RawPeer.open(router, transport, "json")
        welcome = await raw.hello(realm, {"roles": RAW_CLIENT_ROLES, **(details or {})})
        assert welcome[0] == 2, welcome
        return cls(name, raw, welcome)

    async def exchange(self, message: list, until) -> list[str]:
        """Sends ``message`` and reads until ``until(reply)``; returns the frames as lines."""
        await self.raw.send(message)
        lines = [f"{self.name} -> {frame(message)}"]
        while True:
            reply = await self.raw.recv()
            lines.append(f"{self.name} <- {frame(reply)}")
            if until(reply):
                return lines

    async def call(self, procedure: str, args: list | None = None,
                   kwargs: dict | None = None) -> tuple[list, list[str]]:
        """A CALL; returns the RESULT, ERROR (or ABORT) and the frames, events received meanwhile
        included."""
        request = self.raw.next_request_id()
        message = [CALL, request, {}, procedure]
        if args is not None or kwargs is not None:
            message.append(args or [])
        if kwargs is not None:
            message.append(kwargs)
        lines = await self.exchange(
            message,
            lambda r: (r[0] == RESULT and r[1] == request) or r[:3] == [ERROR, CALL, request]
            or r[0] == ABORT,
        )
        return json.loads(lines[-1].split(" <- ", 1)[1]), lines

    async def request(self, message_type: int, reply_type: int, *fields) -> tuple[list, list[str]]:
        request = self.raw.next_request_id()
        lines = await self.exchange([message_type, request, *fields],
                                    lambda r: r[:2] == [reply_type, request])
        return json.loads(lines[-1].split(" <- ", 1)[1]), lines

    async def events_until(self, last) -> list[str]:
        """Events up to and including the first for which ``last(message)`` holds."""
        lines = []
        while True:
            message = await self.raw.recv()
            assert message[0] == EVENT, message
            lines.append(f"{self.name} <- {frame(message)}")
            if last(message):
                return lines

    async def events(self, count: int, skip_session: int | None = None) -> list[str]:
        """The next ``count`` events (leaving out those whose first argument is skip_session)."""
        lines = []
        while count:
            message = await self.raw.recv()
            assert message[0] == EVENT, message
            if skip_session is not None and message[4] and message[4][0] == skip_session:
                continue
            lines.append(f"{self.name} <- {frame(message)}")
            count -= 1
        return lines


async def capture_kind(out: Capture, router: RouterProcess, kind: str, alice: Peer, bob: Peer,
                       carol: Peer, watcher: Peer) -> None:
    """Registrations (or subscriptions): bob and carol attach and detach, alice asks."""
    k = KINDS[kind]
    attach, detach = k["messages"]
    reply, lines = await bob.request(*attach, k["shared"], k["uri"])
    attached = reply[2]
    out.add(f"wamp.{kind}.on_create and {k['attach_event']}", lines + await watcher.events(2),
            f"bob attaches to `{k['uri']}`; the watcher's events.")
    _, lines = await carol.request(*attach, k["shared"], k["uri"])
    out.add(f"wamp.{kind}.{k['attach_event']} (second session)",
            lines + await watcher.events(1))
    for policy, uri in [("prefix", "com.example"), ("wildcard", "com.example..sum")]:
        await bob.request(*attach, {"match": policy}, uri)
        await watcher.events(2)
    list_sessions, count_sessions = k["sessions"]
    for title, args in [
        (f"wamp.{kind}.list", None),
        (f"wamp.{kind}.lookup", [k["uri"]]),
        (f"wamp.{kind}.lookup (prefix)", ["com.example", {"match": "prefix"}]),
        (f"wamp.{kind}.lookup (not found)", ["com.example"]),
        (f"wamp.{kind}.match", [k["matched"]]),
        (f"wamp.{kind}.match (none)", ["org.example.nothing"]),
        (f"wamp.{kind}.get", [attached]),
        (f"wamp.{kind}.{list_sessions}", [attached]),
        (f"wamp.{kind}.{count_sessions}", [attached]),
        (f"wamp.{kind}.get (unknown {kind})", [1234567]),
    ]:
        _, lines = await alice.call(title.split(" ")[0], args)
        out.add(title, lines)
    # An invalid options dictionary inside the arguments is the call's error; alice goes on.
    _, lines = await alice.call(f"wamp.{kind}.lookup", ["com.example", {"match": "fuzzy"}])
    _, after = await alice.call(f"wamp.{kind}.lookup", [k["uri"]])
    out.add(f"wamp.{kind}.lookup (invalid options)", lines + after,
            "The call fails with invalid_argument and the session stays usable.")
    _, lines = await carol.request(*detach, attached)
    out.add(f"wamp.{kind}.{k['detach_event']}", lines + await watcher.events(1))
    _, lines = await bob.request(*detach, attached)
    out.add(f"wamp.{kind}.{k['detach_event']} and on_delete", lines + await watcher.events(2),
            "The last session detaches: the " + kind + " is deleted.")


async def capture_revocation(out: Capture, router: RouterProcess, alice: Peer,
                             watcher: Peer) -> None:
    """wamp.registration.remove_callee and wamp.subscription.remove_subscriber: ivan announces
    registration_revocation and subscription_revocation; judy announces neither."""
    revocable = {
        "callee": {"features": {"registration_revocation": True}},
        "subscriber": {"features": {"subscription_revocation": True}},
    }
    ivan = await Peer.join(router, "ivan", details={"roles": {**RAW_CLIENT_ROLES, **revocable}})
    judy = await Peer.join(router, "judy")
    await watcher.events(2)  # their on_join
    reply, _ = await ivan.request(REGISTER, REGISTERED, {"invoke": "roundrobin"},
                                  "com.example.revocable")
    registration = reply[2]
    await judy.request(REGISTER, REGISTERED, {"invoke": "roundrobin"}, "com.example.revocable")
    reply, _ = await ivan.request(SUBSCRIBE, SUBSCRIBED, {}, "com.example.revocable")
    subscription = reply[2]
    await judy.request(SUBSCRIBE, SUBSCRIBED, {}, "com.example.revocable")
    await watcher.events(6)  # on_create, on_register, on_register, and the same for the topic

    _, lines = await alice.call("wamp.registration.remove_callee", [registration, ivan.session],
                                {"reason": "com.example.maintenance"})
    lines.append(f"ivan <- {frame(await ivan.raw.recv())}")
    out.add("wamp.registration.remove_callee", lines + await watcher.events(1),
            "ivan announced registration_revocation: he receives UNREGISTERED with request 0.")
    _, lines = await alice.call("wamp.registration.remove_callee", [registration, judy.session])
    out.add("wamp.registration.remove_callee (callee without registration_revocation)",
            lines + await watcher.events(2),
            "judy did not announce the feature: she receives nothing. She was the last callee, "
            "so the registration is deleted.")
    for title, args in [
        ("wamp.registration.remove_callee (unknown registration)", [1234567, judy.session]),
        ("wamp.registration.remove_callee (session not a callee)", [registration, alice.session]),
    ]:
        _, lines = await alice.call("wamp.registration.remove_callee", args)
        out.add(title, lines)

    _, lines = await alice.call("wamp.subscription.remove_subscriber",
                                [subscription, ivan.session])
    lines.append(f"ivan <- {frame(await ivan.raw.recv())}")
    out.add("wamp.subscription.remove_subscriber", lines + await watcher.events(1),
            "ivan announced subscription_revocation: he receives UNSUBSCRIBED with request 0, "
            "and the default reason as no reason was given.")
    _, lines = await alice.call("wamp.subscription.remove_subscriber",
                                [subscription, judy.session])
    out.add("wamp.subscription.remove_subscriber (subscriber without subscription_revocation)",
            lines + await watcher.events(2))
    _, lines = await alice.call("wamp.subscription.remove_subscriber", [1234567, judy.session])
    out.add("wamp.subscription.remove_subscriber (unknown subscription)", lines)
    for peer in (ivan, judy):
        await peer.raw.close()
    await watcher.events(2)  # their on_leave


HISTORY_CONFIG = """
[[realms]]
name = "realm1"

[[realms.event_history]]
topic = "com.example.history"
match = "prefix"
limit = 100
"""


async def capture_history(out: Capture, router: RouterProcess) -> None:
    """wamp.subscription.get_events on a router whose configuration keeps history for topics
    starting with com.example.history."""
    kate = await Peer.join(router, "kate")
    leo = await Peer.join(router, "leo")
    reply, lines = await kate.request(SUBSCRIBE, SUBSCRIBED, {"match": "prefix"},
                                      "com.example.history")
    subscription = reply[2]
    for topic, args, kwargs, options in [
        ("com.example.history.temperature", [21.5], {"unit": "C"}, {}),
        ("com.example.history.humidity", [40], {}, {}),
        ("com.example.history.temperature", [22.0], {"unit": "C"}, {}),
        ("com.example.history.temperature", [99.0], {}, {"exclude": [1234567]}),
    ]:
        payload = [args, kwargs] if kwargs else [args]
        _, published = await leo.request(PUBLISH, PUBLISHED, {"acknowledge": True, **options},
                                         topic, *payload)
        lines += published
        lines.append(f"kate <- {frame(await kate.raw.recv())}")
    out.add("Publications kept in the history", lines,
            "kate subscribes to the prefix com.example.history, leo publishes four events. "
            "The last one names a session in `exclude`, so it is delivered but not stored.")
    for title, kwargs in [
        ("wamp.subscription.get_events", None),
        ("wamp.subscription.get_events (reverse, limit)", {"reverse": True, "limit": 1}),
        ("wamp.subscription.get_events (topic)", {"topic": "com.example.history.humidity"}),
    ]:
        _, lines = await leo.call("wamp.subscription.get_events", [subscription], kwargs)
        out.add(title, lines)
    _, lines = await leo.call("wamp.subscription.get_events", [subscription],
                              {"after_publication": 1234567})
    out.add("wamp.subscription.get_events (unknown publication)", lines)
    _, lines = await leo.call("wamp.subscription.get_events", [subscription],
                              {"from_time": "yesterday"})
    out.add("wamp.subscription.get_events (bad filter)", lines)
    _, lines = await leo.call("wamp.subscription.get_events", [1234567])
    out.add("wamp.subscription.get_events (unknown subscription)", lines)


async def capture(router: RouterProcess) -> Capture:
    out = Capture()
    # The watcher subscribes to every meta topic; its own subscriptions cause subscription meta
    # events about itself, which are left out of the examples.
    watcher = await Peer.join(router, "watcher")
    topics: dict[int, str] = {}
    for topic in META_TOPICS:
        reply, _ = await watcher.request(SUBSCRIBE, SUBSCRIBED, {}, topic)
        topics[reply[2]] = topic
    out.add("Subscribing the watcher", [f"subscription {sid} = {topic}"
                                        for sid, topic in topics.items()],
            "The watcher's subscription ids, to read the EVENT frames below.")

    probe = await RawPeer.open(router, "websocket", "json")
    out.add("WELCOME", [f"<- {frame(await probe.hello())}"],
            "The router's roles and features, as every client sees them.")
    await probe.close()
    await watcher.events(2, skip_session=watcher.session)  # the probe's on_join and on_leave

    # --- sessions --------------------------------------------------------------------------
    alice = await Peer.join(router, "alice")
    out.add("wamp.session.on_join", await watcher.events(1), "alice joins over WebSocket.")
    bob = await Peer.join(router, "bob", "rawsocket", {"agent": "bob-client/1.0"})
    out.add("wamp.session.on_join (RawSocket)", await watcher.events(1), "bob joins over RawSocket, naming his client in HELLO.Details.agent.")

    for title, args in [("wamp.session.count", None), ("wamp.session.count (filtered)",
                                                        [["anonymous"]]),
                        ("wamp.session.count (filter matching nobody)", [["com.example.admin"]]),
                        ("wamp.session.list", None), ("wamp.session.list (filtered)",
                                                      [["com.example.admin"]]),
                        ("wamp.session.get", [bob.session]),
                        ("wamp.session.get (unknown session)", [1234567]),
                        ("wamp.session.get (no session id)", ["bob"])]:
        _, lines = await alice.call(title.split(" ")[0], args)
        out.add(title, lines)

    carol = await Peer.join(router, "carol")
    await watcher.events(1)  # carol's on_join
    for kind in KINDS:
        await capture_kind(out, router, kind, alice, bob, carol, watcher)

    await capture_revocation(out, router, alice, watcher)

    # --- testaments ------------------------------------------------------------------------
    reply, _ = await watcher.request(SUBSCRIBE, SUBSCRIBED, {}, TESTAMENT_TOPIC)
    topics[reply[2]] = TESTAMENT_TOPIC
    await watcher.events(2)  # on_create and on_subscribe of that very subscription
    for title, args, kwargs in [
        ("wamp.session.add_testament", [TESTAMENT_TOPIC, ["bob", "gone"], {"reason": "crash"}],
         None),
        ("wamp.session.add_testament (detached scope, publish options)",
         [TESTAMENT_TOPIC, ["bob", "detached"], {}],
         {"scope": "detached", "publish_options": {"exclude": [alice.session]}}),
        ("wamp.session.add_testament (unknown scope)", [TESTAMENT_TOPIC, [], {}],
         {"scope": "forever"}),
        ("wamp.session.add_testament (reserved topic)", ["wamp.session.on_leave", [], {}], None),
        ("wamp.session.add_testament (invalid publish options)",
         [TESTAMENT_TOPIC, [], {}], {"publish_options": {"exclude": "alice"}}),
    ]:
        _, lines = await bob.call("wamp.session.add_testament", args, kwargs)
        out.add(title, lines)
    _, lines = await carol.call("wamp.session.add_testament",
                                [TESTAMENT_TOPIC, ["carol", "flushed"], {}])
    _, flush = await carol.call("wamp.session.flush_testaments", [], {"scope": "destroyed"})
    out.add("wamp.session.flush_testaments", lines + flush)

    bob.raw.abort()
    on_leave = next(sid for sid, topic in topics.items() if topic == "wamp.session.on_leave")
    out.add("Testaments and wamp.session.on_leave when bob's connection drops",
            await watcher.events_until(lambda m: m[1] == on_leave),
            "bob closes the TCP connection without GOODBYE: his remaining subscription's "
            "on_unsubscribe/on_delete, his registrations' on_unregister/on_delete events, "
            "his testaments (detached scope first), then on_leave.")

    # --- killing ---------------------------------------------------------------------------
    for title, args, kwargs in [
        ("wamp.session.kill (own session)", [alice.session], None),
        ("wamp.session.kill (invalid reason)", [carol.session], {"reason": "not a uri"}),
        ("wamp.session.kill (unknown session)", [1234567], None),
    ]:
        _, lines = await alice.call("wamp.session.kill", args, kwargs)
        out.add(title, lines)
    _, lines = await alice.call("wamp.session.kill", [carol.session],
                                {"reason": "com.example.maintenance",
                                 "message": "back in five minutes"})
    goodbye = await carol.raw.recv()
    assert goodbye[0] == GOODBYE, goodbye
    out.add("wamp.session.kill", lines + [f"carol <- {frame(goodbye)}"]
            + await watcher.events(1, skip_session=None),
            "alice kills carol; carol receives GOODBYE, the watcher on_leave. The router "
            "publishes on_leave while it runs the kill, so a caller that watches on_leave "
            "itself may get the event before the RESULT.")
    await carol.raw.close()

    dave = await Peer.join(router, "dave")
    await watcher.events(1)
    _, lines = await alice.call("wamp.session.kill_by_authid", [dave.authid],
                                {"reason": "com.example.revoked"})
    out.add("wamp.session.kill_by_authid", lines + [f"dave <- {frame(await dave.raw.recv())}"]
            + await watcher.events(1))
    await dave.raw.close()

    erin = await Peer.join(router, "erin")
    frank = await Peer.join(router, "frank")
    await watcher.events(2)
    _, lines = await alice.call("wamp.session.kill_by_authrole", ["anonymous"],
                                {"message": "role revoked"})
    out.add("wamp.session.kill_by_authrole", lines + [f"erin <- {frame(await erin.raw.recv())}",
                                                      f"frank <- {frame(await frank.raw.recv())}"],
            "Kills every other anonymous session, the watcher included.")
    for peer in (erin, frank):
        await peer.raw.close()

    grace = await Peer.join(router, "grace")
    heidi = await Peer.join(router, "heidi")
    await alice.request(SUBSCRIBE, SUBSCRIBED, {}, "wamp.session.on_leave")
    _, lines = await alice.call("wamp.session.kill_all", [], {})
    lines.append(f"grace <- {frame(await grace.raw.recv())}")
    lines.append(f"heidi <- {frame(await heidi.raw.recv())}")
    lines += await alice.events(2 - sum(" <- [36," in line for line in lines))
    out.add("wamp.session.kill_all", lines,
            "alice, subscribed to on_leave, kills everyone else: she still receives on_leave "
            "for each killed session.")
    _, lines = await alice.call("wamp.session.count")
    out.add("wamp.session.count after kill_all", lines)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the Markdown here instead of stdout")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="junction-meta-capture-") as workdir:
        router = RouterProcess(junction_binary(), Path(workdir) / "default").start()
        try:
            result = await asyncio.wait_for(capture(router), 60)
        finally:
            router.stop()
        # Event history needs a configuration file that names the topics to keep.
        router = RouterProcess(junction_binary(), Path(workdir) / "history",
                               config=HISTORY_CONFIG).start()
        try:
            await asyncio.wait_for(capture_history(result, router), 60)
        finally:
            router.stop()
    text = result.markdown()
    if options.out:
        options.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    asyncio.run(main())
