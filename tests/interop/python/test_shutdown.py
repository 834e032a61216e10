"""Graceful shutdown: SIGTERM says GOODBYE (wamp.close.system_shutdown) to every session, exit 0."""

from __future__ import annotations

import asyncio
import signal

from junction_harness import GOODBYE, PeerClosed, RECV_TIMEOUT

EXIT_TIMEOUT = 10.0


async def wait_for_exit(router) -> int | None:
    return await asyncio.get_running_loop().run_in_executor(None, router.wait_exit, EXIT_TIMEOUT)


async def test_sigterm_sends_system_shutdown_goodbye_to_every_session_and_exits_zero(router, clients):
    raw_sides = [("websocket", "json"), ("rawsocket", "msgpack"), ("websocket", "cbor"),
                 ("rawsocket", "json")]
    raw_peers = [await clients.raw(*side) for side in raw_sides]
    for peer in raw_peers:
        await peer.join()
    autobahn_sessions = [await clients.autobahn("rawsocket", "cbor"),
                         await clients.autobahn("websocket", "msgpack")]

    router.send_signal(signal.SIGTERM)

    for side, peer in zip(raw_sides, raw_peers):
        try:
            goodbye = await peer.recv()
        except PeerClosed as e:
            raise AssertionError(f"{side}: transport closed without GOODBYE ({e})") from None
        assert goodbye[0] == GOODBYE, (side, goodbye)
        assert goodbye[2] == "wamp.close.system_shutdown", (side, goodbye)
        try:
            await peer.send([GOODBYE, {}, "wamp.close.goodbye_and_out"])
        except Exception:
            pass  # the router may already have closed the transport
    for session in autobahn_sessions:
        details = await asyncio.wait_for(asyncio.shield(session.left), RECV_TIMEOUT)
        assert details.reason == "wamp.close.system_shutdown", (
            session.transport_name, session.serializer_name, details
        )

    assert await wait_for_exit(router) == 0


async def test_sigterm_without_sessions_exits_zero(router):
    router.send_signal(signal.SIGTERM)

    assert await wait_for_exit(router) == 0


async def test_sigterm_closes_transport_that_never_sent_hello(router, clients):
    idle = await clients.raw("rawsocket", "cbor")
    joined = await clients.raw("websocket", "json")
    await joined.join()

    router.send_signal(signal.SIGTERM)

    goodbye = await joined.recv()
    assert goodbye[0] == GOODBYE and goodbye[2] == "wamp.close.system_shutdown", goodbye
    await joined.send([GOODBYE, {}, "wamp.close.goodbye_and_out"])
    # A transport without a session gets no GOODBYE (there is no session to close), but it must
    # be closed and must not keep the router alive.
    await idle.wait_closed(EXIT_TIMEOUT)
    assert await wait_for_exit(router) == 0
