"""Router-issued tickets (Bondy's ``bondy.ticket.*``, see docs/security.md and Bondy's
reference bondy/reference/wamp_api/ticket.md), end to end with Autobahn|Python: a user who
joined with a password is issued a ticket, joins with authmethod ``ticket`` and the ticket as its
secret, and loses it when it is revoked; issued and revoked tickets survive restarts and
``kill -9``.

``com.acme`` has users ``joe`` and ``ann`` (group ``users``, may call ``bondy.ticket.*`` and
issue local and client tickets), ``kiosk`` (a client application: local tickets only), ``nora``
(may call ``bondy.ticket.*`` but holds no ``bondy.issue``) and ``boss`` (may call everything
under ``bondy.``); ``com.other`` also has a ``joe``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal

import pytest
import pytest_asyncio
from autobahn.wamp.exception import ApplicationError

from conftest import ClientPool
from junction_harness import (
    RECV_TIMEOUT,
    STARTUP_TIMEOUT,
    JoinFailed,
    join_autobahn_auth,
    ticket_answer,
)

ACME = "com.acme"
OTHER = "com.other"
NOT_AUTHORIZED = "wamp.error.not_authorized"
AUTHENTICATION_FAILED = "wamp.error.authentication_failed"

CONFIG = f"""
[[realms]]
name = "{ACME}"
anonymous = false

[realms.security]
authmethods = ["ticket", "wampcra"]

[[realms.security.users]]
authid = "joe"
password = "joe-secret-1"
groups = ["users"]

[[realms.security.users]]
authid = "ann"
password = "ann-secret-1"
groups = ["users"]

[[realms.security.users]]
authid = "boss"
password = "boss-secret-1"
groups = ["managers"]

[[realms.security.users]]
authid = "kiosk"
password = "kiosk-secret-1"
groups = ["apps"]

[[realms.security.users]]
authid = "nora"
password = "nora-secret-1"
groups = ["guests"]

[[realms.security.groups]]
name = "users"

[[realms.security.groups]]
name = "apps"

[[realms.security.groups]]
name = "guests"

[[realms.security.groups]]
name = "managers"

[[realms.security.grants]]
permissions = ["wamp.call"]
uri = "bondy.ticket."
match = "prefix"
roles = ["users", "apps", "guests"]

[[realms.security.grants]]
permissions = ["bondy.issue"]
uri = "bondy.ticket.scope.local"
roles = ["users", "apps"]

[[realms.security.grants]]
permissions = ["bondy.issue"]
uri = "bondy.ticket.scope.client_local"
roles = ["users"]

[[realms.security.grants]]
permissions = ["wamp.call"]
uri = "bondy."
match = "prefix"
roles = ["managers"]

[[realms]]
name = "{OTHER}"
anonymous = false

[realms.security]
authmethods = ["ticket"]

[[realms.security.users]]
authid = "joe"
password = "joe-secret-1"
"""

pytestmark = pytest.mark.router_config(CONFIG)


class Clients(ClientPool):
    async def login(self, realm: str, authid: str, secret: str):
        session = await join_autobahn_auth(self.router, realm, ["ticket"], authid,
                                           ticket_answer(secret))
        self._autobahn.append(session)
        return session


@pytest_asyncio.fixture
async def clients(router):
    pool = Clients(router)
    yield pool
    await pool.close()


async def call(session, procedure: str, *args, **kwargs):
    return await asyncio.wait_for(session.call(procedure, *args, **kwargs), RECV_TIMEOUT)


async def refused(awaitable, error: str) -> None:
    with pytest.raises(ApplicationError) as e:
        await asyncio.wait_for(awaitable, RECV_TIMEOUT)
    assert e.value.error == error, e.value


async def join_fails(coro) -> JoinFailed:
    with pytest.raises(JoinFailed) as e:
        await coro
    assert e.value.reason == AUTHENTICATION_FAILED, e.value
    return e.value


def claims_of(ticket: str) -> dict:
    payload = ticket.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def issue(pool, authid: str = "joe", **options) -> str:
    session = await pool.login(ACME, authid, f"{authid}-secret-1")
    ticket = await call(session, "bondy.ticket.issue", **options)
    assert isinstance(ticket, str), ticket
    return ticket


async def test_an_issued_ticket_joins_until_it_is_revoked(clients):
    ticket = await issue(clients, expiry_time_secs=600)
    claims = claims_of(ticket)
    assert claims["authid"] == "joe" and claims["authrealm"] == ACME
    assert claims["expires_at"] - claims["issued_at"] == 600

    joe = await clients.login(ACME, "joe", ticket)
    d = joe.joined.result()
    assert (d.realm, d.authid, d.authmethod) == (ACME, "joe", "ticket")
    verified = await call(joe, "bondy.ticket.verify", ticket)
    assert verified["id"] == claims["id"] and verified["authid"] == "joe"
    # Bondy: a session that joined with a ticket may not issue one.
    await refused(call(joe, "bondy.ticket.issue"), NOT_AUTHORIZED)
    # Another user may not revoke joe's ticket.
    ann = await clients.login(ACME, "ann", "ann-secret-1")
    await refused(call(ann, "bondy.ticket.revoke", claims["id"]), NOT_AUTHORIZED)

    await call(joe, "bondy.ticket.revoke", claims["id"])
    wrong = await join_fails(clients.login(ACME, "joe", "not-the-password"))
    revoked = await join_fails(clients.login(ACME, "joe", ticket))
    assert revoked.message == wrong.message, "no hint which check failed"
    await refused(call(ann, "bondy.ticket.verify", ticket), AUTHENTICATION_FAILED)


async def test_a_ticket_is_only_valid_for_its_user_and_realm(clients):
    ticket = await issue(clients)
    await join_fails(clients.login(OTHER, "joe", ticket))
    await join_fails(clients.login(ACME, "ann", ticket))
    payload, signature = ticket.split(".")
    forged = dict(claims_of(ticket), authid="ann")
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    await join_fails(clients.login(ACME, "ann", f"{forged_payload}.{signature}"))
    await clients.login(ACME, "joe", ticket)


async def test_issuing_needs_bondy_issue_on_the_tickets_scope(clients):
    nora = await clients.login(ACME, "nora", "nora-secret-1")
    with pytest.raises(ApplicationError) as e:
        await call(nora, "bondy.ticket.issue")
    assert e.value.error == NOT_AUTHORIZED
    assert e.value.args == (
        'permission bondy.issue on "bondy.ticket.scope.local" is not granted to this session',)
    # kiosk may issue its own (local) tickets, not client tickets.
    kiosk_ticket = await issue(clients, "kiosk")
    kiosk = await clients.login(ACME, "kiosk", "kiosk-secret-1")
    with pytest.raises(ApplicationError) as e:
        await call(kiosk, "bondy.ticket.issue", client_ticket=kiosk_ticket)
    assert "bondy.ticket.scope.client_local" in e.value.args[0], e.value


async def test_a_client_ticket_names_its_client_and_expires_with_it(clients):
    """A client application (kiosk) holds a ticket of its own; joe, logged in with his password,
    is issued a ticket through it (``client_ticket``): the ticket is joe's, issued by kiosk,
    names kiosk in its scope, and does not outlive kiosk's ticket."""
    kiosk_ticket = await issue(clients, "kiosk", expiry_time_secs=120)
    ticket = await issue(clients, client_ticket=kiosk_ticket, client_id="kiosk",
                         client_instance_id="lobby-2", expiry_time_secs=3600)
    joe = await clients.login(ACME, "joe", ticket)
    assert joe.joined.result().authid == "joe"
    claims = await call(joe, "bondy.ticket.verify", ticket)
    assert (claims["authid"], claims["issued_by"]) == ("joe", "kiosk"), claims
    assert claims["scope"] == {"realm": ACME, "client_id": "kiosk",
                               "client_instance_id": "lobby-2"}, claims
    assert claims["expires_at"] == claims_of(kiosk_ticket)["expires_at"], claims
    # A ticket that is not kiosk's valid ticket vouches for nothing.
    with pytest.raises(ApplicationError) as e:
        await issue(clients, client_ticket=kiosk_ticket + "x")
    assert e.value.error == AUTHENTICATION_FAILED, e.value


async def test_a_user_administrator_revokes_all_tickets_of_a_user(clients):
    first = await issue(clients)
    second = await issue(clients)
    boss = await clients.login(ACME, "boss", "boss-secret-1")
    await call(boss, "bondy.ticket.revoke_all", ACME, "joe")
    for ticket in (first, second):
        await join_fails(clients.login(ACME, "joe", ticket))
    await clients.login(ACME, "joe", "joe-secret-1")


def stop(router, sig: int) -> None:
    router.send_signal(sig)
    assert router.wait_exit(STARTUP_TIMEOUT) is not None, f"junction did not exit on {sig}"


async def test_issued_and_revoked_tickets_survive_restart_and_kill_9(clients, router):
    kept = await issue(clients)
    gone = await issue(clients)
    await clients.close()
    stop(router, signal.SIGTERM)
    router.start()

    pool = Clients(router)
    try:
        joe = await pool.login(ACME, "joe", kept)
        await pool.login(ACME, "joe", gone)
        # The last change, answered just before the kill.
        await call(joe, "bondy.ticket.revoke", claims_of(gone)["id"])
    finally:
        await pool.close()
    stop(router, signal.SIGKILL)
    router.start()

    pool = Clients(router)
    try:
        await pool.login(ACME, "joe", kept)
        await join_fails(pool.login(ACME, "joe", gone))
    finally:
        await pool.close()
