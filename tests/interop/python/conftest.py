"""Fixtures: a fresh Junction router per test, and a pool of clients that is closed afterwards."""

from __future__ import annotations

import pytest
import pytest_asyncio

from junction_harness import (
    RawPeer,
    RouterProcess,
    RouterStartError,
    close_xconn,
    connect_autobahn,
    connect_xconn,
    junction_binary,
)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # Attach the log of every router the test started, so a failure shows what the router said.
    if report.failed:
        for router in getattr(item, "junction_routers", []):
            title = getattr(router, "log_title", None) or f"junction router log (port {router.port})"
            report.sections.append((title, router.log_tail()))
    return report


@pytest.fixture
def router(request, tmp_path):
    """A running ``junction serve`` on a free loopback port, with its own data directory.

    It opens realm ``realm1``, or the realms a test names with ``@pytest.mark.realms(...)``, or
    whatever the configuration file given with ``@pytest.mark.router_config("<TOML>")`` says.
    """
    marker = request.node.get_closest_marker("realms")
    config = request.node.get_closest_marker("router_config")
    proc = RouterProcess(junction_binary(), tmp_path, realms=list(marker.args) if marker else None,
                         config=config.args[0] if config else None)
    request.node.junction_routers = getattr(request.node, "junction_routers", []) + [proc]
    try:
        proc.start()
    except RouterStartError as e:
        pytest.fail(str(e), pytrace=False)
    yield proc
    crashed = not proc.stopped_by_test and not proc.is_running()
    exit_code = proc.proc.poll()
    proc.stop()
    if crashed:
        pytest.fail(
            f"junction exited during the test with code {exit_code}; log:\n{proc.log_tail()}",
            pytrace=False,
        )


class ClientPool:
    """Opens clients of every kind against one router and closes them all at teardown."""

    def __init__(self, router: RouterProcess):
        self.router = router
        self._autobahn = []
        self._xconn = []
        self._raw = []

    async def autobahn(self, transport: str = "websocket", serializer: str = "json", **kw):
        session = await connect_autobahn(self.router, transport, serializer, **kw)
        self._autobahn.append(session)
        return session

    async def xconn(self, transport: str = "websocket", serializer: str = "json", **kw):
        session = await connect_xconn(self.router, transport, serializer, **kw)
        self._xconn.append(session)
        return session

    async def raw(self, transport: str = "websocket", serializer: str = "json") -> RawPeer:
        peer = await RawPeer.open(self.router, transport, serializer)
        self._raw.append(peer)
        return peer

    async def close(self) -> None:
        for session in self._autobahn:
            await session.close()
        for session in self._xconn:
            await close_xconn(session)
        for peer in self._raw:
            await peer.close()


@pytest_asyncio.fixture
async def clients(router):
    pool = ClientPool(router)
    yield pool
    await pool.close()
