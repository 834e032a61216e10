"""Realm security end to end: authentication (ticket, salted WAMP-CRA, Cryptosign, WAMP-SCRAM) and
authorization (grants to users, nested groups, `all` and `anonymous`), with Autobahn|Python,
xconn and hand-written frames (spec: advanced/authentication*.md, authorization.md; see
docs/security.md).

Every test starts a router with ``CONFIG`` below: realm ``secure`` (no anonymous sessions, four
methods, five users, three groups, grants), realm ``ticketonly`` (ticket only, with a ``joe`` of
its own), realm ``open`` (anonymous sessions welcome, with grants for them) and realm ``public``
(no security section, so anything goes). The Cryptosign key pairs are generated when this module
is imported; only ann's public key goes into the configuration. ``autobahn.wamp.cryptosign``
needs Autobahn's ``encryption`` extra (PyNaCl, base58, ecdsa) in the virtualenv, and
``AuthScram`` its ``scram`` extra (argon2-cffi, passlib).

Checks that something is *not* delivered never sleep: the test makes the router send a later
message to the same peer (a "marker") and asserts that the marker is the next thing that peer
receives, since the router delivers what it sends to one session in order.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re

import nacl.signing
import pytest
import pytest_asyncio
from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.auth import compute_wcs, derive_key
from autobahn.wamp.cryptosign import CryptosignKey
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import ComponentConfig, PublishOptions, RegisterOptions
from wampproto.exception import ApplicationError as XconnAbort
import xconn
from xconn.async_client import connect as xconn_connect
from xconn.exception import ApplicationError as XconnError
from xconn.types import Result

from conftest import ClientPool
from junction_harness import (
    ABORT,
    CALL,
    ERROR,
    PUBLISH,
    RAW_CLIENT_ROLES,
    RECV_TIMEOUT,
    RESULT,
    SUBSCRIBE,
    TRANSPORT_SERIALIZER_MATRIX,
    WELCOME,
    AutobahnTestSession,
    JoinFailed,
    RawPeer,
    assert_error,
    autobahn_serializer,
    scram,
    subscribe_collector,
    join_with_component,
    xconn_serializer,
)

CHALLENGE, AUTHENTICATE = 4, 5

AUTHENTICATION_FAILED = "wamp.error.authentication_failed"
NO_MATCHING_AUTH_METHOD = "wamp.error.no_matching_auth_method"
NO_SUCH_REALM = "wamp.error.no_such_realm"
NOT_AUTHORIZED = "wamp.error.not_authorized"
NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"

SECURE, TICKET_ONLY, OPEN, PUBLIC = "secure", "ticketonly", "open", "public"

JOE_SECRET = "joe-secret"
CARL_SECRET = "carl-secret"
EVE_SECRET = "eve-secret"
NORA_SECRET = "nora-secret"
UNA_SECRET = "una-secret-unsalted"
JOE_TICKETONLY_SECRET = "joe-has-another-secret-here"

# Ed25519 key pairs, made the way docs/security.md shows: 32 random octets are the private key.
ANN_SEED = os.urandom(32)
ANN_KEY = CryptosignKey.from_bytes(ANN_SEED)
OTHER_SEED = os.urandom(32)
OTHER_KEY = CryptosignKey.from_bytes(OTHER_SEED)

CONFIG = f"""
[[realms]]
name = "{SECURE}"
anonymous = false

[realms.security]
authmethods = ["ticket", "wampcra", "cryptosign", "scram"]

[[realms.security.users]]
authid = "joe"
password = "{JOE_SECRET}"
groups = ["user"]

[[realms.security.users]]
authid = "carl"
password = "{CARL_SECRET}"
groups = ["admin"]

[[realms.security.users]]
authid = "ann"
authorized_keys = ["{ANN_KEY.public_key()}"]
groups = ["admin"]

[[realms.security.users]]
authid = "eve"
password = "{EVE_SECRET}"
groups = ["guest"]

# In no group at all.
[[realms.security.users]]
authid = "nora"
password = "{NORA_SECRET}"

# Opted in to unsalted WAMP-CRA: her challenges carry no salt.
[[realms.security.users]]
authid = "una"
password = "{UNA_SECRET}"
wampcra_unsalted = true
groups = ["user"]

[[realms.security.groups]]
name = "user"

[[realms.security.groups]]
name = "admin"
groups = ["user"]

[[realms.security.groups]]
name = "guest"

# Users call and subscribe under com.app., and may publish on com.app.chat only.
[[realms.security.grants]]
permissions = ["wamp.call", "wamp.subscribe", "wamp.unsubscribe"]
uri = "com.app."
match = "prefix"
roles = ["user"]

[[realms.security.grants]]
permissions = ["wamp.publish"]
uri = "com.app.chat"
roles = ["user"]

# Admins (who are users too) also register and publish under com.app. and use the meta API.
[[realms.security.grants]]
permissions = ["wamp.register", "wamp.unregister", "wamp.publish"]
uri = "com.app."
match = "prefix"
roles = ["admin"]

[[realms.security.grants]]
permissions = ["wamp.call"]
uri = "wamp."
match = "prefix"
roles = ["admin"]

[[realms.security.grants]]
permissions = ["wamp.register"]
uri = "com.device."
match = "prefix"
roles = ["admin"]

# Users may call the status procedure of any device, nothing else there.
[[realms.security.grants]]
permissions = ["wamp.call"]
uri = "com.device..status"
match = "wildcard"
roles = ["user"]

# Every authenticated session may call the clock.
[[realms.security.grants]]
permissions = ["wamp.call"]
uri = "com.app.time"
roles = ["all"]

# A grant to one authid.
[[realms.security.grants]]
permissions = ["wamp.subscribe"]
uri = "com.joe.inbox"
roles = ["joe"]

# Subscribe without unsubscribe.
[[realms.security.grants]]
permissions = ["wamp.subscribe"]
uri = "com.sticky."
match = "prefix"
roles = ["user"]

# One exact topic, nothing below it.
[[realms.security.grants]]
permissions = ["wamp.subscribe"]
uri = "com.feed.public"
roles = ["user"]

# Joe's calls under com.app.open. and his publications on com.app.chat tell who he is.
[[realms.security.grants]]
permissions = ["wamp.disclose_caller"]
uri = "com.app.open."
match = "prefix"
roles = ["joe"]

[[realms.security.grants]]
permissions = ["wamp.disclose_publisher"]
uri = "com.app.chat"
roles = ["joe"]

[[realms]]
name = "{TICKET_ONLY}"
anonymous = false

[realms.security]
authmethods = ["ticket"]

[[realms.security.users]]
authid = "joe"
password = "{JOE_TICKETONLY_SECRET}"
groups = ["user"]

[[realms.security.groups]]
name = "user"

[[realms]]
name = "{OPEN}"
anonymous = true

[realms.security]
authmethods = ["ticket"]

[[realms.security.users]]
authid = "joe"
password = "{JOE_SECRET}"
groups = ["publisher"]

[[realms.security.groups]]
name = "publisher"

[[realms.security.grants]]
permissions = ["wamp.subscribe", "wamp.call"]
uri = "com.public."
match = "prefix"
roles = ["anonymous"]

[[realms.security.grants]]
permissions = ["wamp.register", "wamp.publish"]
uri = "com.public."
match = "prefix"
roles = ["publisher"]

[[realms]]
name = "{PUBLIC}"
"""

pytestmark = pytest.mark.router_config(CONFIG)


# ------------------------------------------------------------------------------------------------
# Clients that authenticate
# ------------------------------------------------------------------------------------------------


def ticket(secret: str):
    """An onChallenge answer for ticket: the secret itself."""

    def respond(challenge):
        assert challenge.method == "ticket", challenge
        return secret

    return respond


def wampcra(secret: str):
    """An onChallenge answer for salted WAMP-CRA, computed as Autobahn documents it."""

    def respond(challenge):
        assert challenge.method == "wampcra", challenge
        extra = challenge.extra
        key = derive_key(secret, extra["salt"], extra["iterations"], extra["keylen"])
        return compute_wcs(key, extra["challenge"])

    return respond


def wampcra_unsalted(secret: str):
    """An onChallenge answer for unsalted WAMP-CRA: ``compute_wcs`` keyed with the secret
    itself. Fails the test if the challenge carries a salt."""

    def respond(challenge):
        assert challenge.method == "wampcra", challenge
        assert set(challenge.extra) == {"challenge"}, challenge.extra
        return compute_wcs(secret, challenge.extra["challenge"])

    return respond


def cryptosign(key: CryptosignKey):
    """An onChallenge answer for Cryptosign: the signature by ``key`` (Autobahn appends the
    signed challenge, 96 octets in all)."""

    def respond(challenge):
        assert challenge.method == "cryptosign", challenge
        return key.sign_challenge(challenge)

    return respond


class AuthSession(AutobahnTestSession):
    """An Autobahn session that joins with the given authentication and records its CHALLENGEs."""

    def __init__(self, config: ComponentConfig, join: dict, respond):
        super().__init__(config)
        self._join = join
        self._respond = respond
        self.challenges = []

    def onConnect(self):
        self.join(self.config.realm, **self._join)

    def onChallenge(self, challenge):
        self.challenges.append(challenge)
        if self._respond is None:
            raise RuntimeError(f"unexpected CHALLENGE {challenge.method} {challenge.extra!r}")
        return self._respond(challenge)


async def join_autobahn(router, realm: str, authmethods: list[str] | None, authid: str | None,
                        respond=None, authextra: dict | None = None,
                        transport: str = "websocket", serializer: str = "json") -> AuthSession:
    """Join ``realm`` with Autobahn|Python; JoinFailed(reason, message) on ABORT."""
    loop = asyncio.get_running_loop()
    join = {"authmethods": authmethods, "authid": authid, "authextra": authextra}
    session = AuthSession(ComponentConfig(realm=realm), join, respond)

    def session_factory():
        return session

    if transport == "websocket":
        factory = WampWebSocketClientFactory(
            session_factory, url=router.ws_url, serializers=[autobahn_serializer(serializer)]
        )
    else:
        factory = WampRawSocketClientFactory(
            session_factory, serializer=autobahn_serializer(serializer)
        )
    _, protocol = await asyncio.wait_for(
        loop.create_connection(factory, router.host, router.port), RECV_TIMEOUT
    )
    closed = asyncio.ensure_future(protocol.is_closed)
    done, _ = await asyncio.wait({session.joined, closed}, timeout=RECV_TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    if session.joined in done:
        session.joined.result()  # raises JoinFailed on ABORT
        return session
    if closed in done:
        raise JoinFailed(None, f"{transport}/{serializer} transport closed before WELCOME")
    raise JoinFailed(None, f"no WELCOME within {RECV_TIMEOUT}s over {transport}/{serializer}")


class AuthClients(ClientPool):
    """The conftest client pool, plus clients that authenticate (closed at teardown too)."""

    async def autobahn_auth(self, realm: str, authmethods, authid, respond=None, **kw):
        session = await join_autobahn(self.router, realm, authmethods, authid, respond, **kw)
        self._autobahn.append(session)
        return session

    async def joe(self, **kw):
        return await self.autobahn_auth(SECURE, ["ticket"], "joe", ticket(JOE_SECRET), **kw)

    async def carl(self, **kw):
        return await self.autobahn_auth(SECURE, ["wampcra"], "carl", wampcra(CARL_SECRET), **kw)

    async def eve(self, **kw):
        return await self.autobahn_auth(SECURE, ["ticket"], "eve", ticket(EVE_SECRET), **kw)

    async def anonymous(self, realm: str, **kw):
        return await self.autobahn_auth(realm, None, None, None, **kw)

    async def xconn_auth(self, realm: str, authenticator, transport="websocket",
                         serializer="json"):
        session = await asyncio.wait_for(
            xconn_connect(self.router.url_for(transport), realm, authenticator,
                          xconn_serializer(serializer)),
            RECV_TIMEOUT,
        )
        self._xconn.append(session)
        return session

    async def raw_hello(self, realm: str, details: dict, transport="websocket",
                        serializer="json") -> tuple[RawPeer, list]:
        """A hand-written peer that sent HELLO with ``details`` (roles added) and got a reply."""
        peer = await self.raw(transport, serializer)
        reply = await peer.hello(realm, {"roles": RAW_CLIENT_ROLES, **details})
        return peer, reply


@pytest_asyncio.fixture
async def auth(router):
    pool = AuthClients(router)
    yield pool
    await pool.close()


async def join_fails(coro) -> JoinFailed:
    """The JoinFailed a join ends with; fails the test if it succeeds."""
    try:
        session = await coro
    except JoinFailed as e:
        return e
    pytest.fail(f"joined as {session.joined.result()!r}, expected an ABORT")


async def call(session, procedure: str, *args, **kwargs):
    return await asyncio.wait_for(session.call(procedure, *args, **kwargs), RECV_TIMEOUT)


async def refused(awaitable) -> ApplicationError:
    """The ApplicationError an Autobahn request fails with; fails the test if it succeeds."""
    try:
        result = await asyncio.wait_for(awaitable, RECV_TIMEOUT)
    except ApplicationError as e:
        return e
    pytest.fail(f"request succeeded with {result!r}, expected an ERROR")


def assert_not_authorized(error: ApplicationError, permission: str, uri: str) -> None:
    assert error.error == NOT_AUTHORIZED, error
    assert error.args and error.args[0] == (
        f'permission {permission} on "{uri}" is not granted to this session'
    ), error.args


def assert_welcome(session, realm: str, authid: str, authrole: str, authmethod: str) -> None:
    details = session.joined.result()
    assert (details.realm, details.authid, details.authrole, details.authmethod,
            details.authprovider) == (realm, authid, authrole, authmethod, "junction"), details


def shape(message: str, authid: str) -> str:
    """An ABORT message with the authid taken out, to compare failures of different users."""
    return message.replace(authid, "<authid>")


def assert_reveals_nothing(message: str | None) -> None:
    assert message, "ABORT without a message"
    for word in ("unknown", "exist", "no such", "not found"):
        assert word not in message.lower(), f"failure message gives hints: {message!r}"


async def register(session, procedure: str, endpoint) -> object:
    return await asyncio.wait_for(session.register(endpoint, procedure), RECV_TIMEOUT)


# ------------------------------------------------------------------------------------------------
# Authentication with Autobahn|Python
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport,serializer", TRANSPORT_SERIALIZER_MATRIX)
async def test_ticket_welcomes_joe_as_user(auth, transport, serializer):
    session = await auth.joe(transport=transport, serializer=serializer)

    assert_welcome(session, SECURE, "joe", "user", "ticket")
    [challenge] = session.challenges
    assert (challenge.method, challenge.extra) == ("ticket", {})


@pytest.mark.parametrize("transport,serializer",
                         [("websocket", "json"), ("rawsocket", "cbor"), ("websocket", "msgpack")])
async def test_wampcra_is_salted_and_welcomes_carl_as_admin(auth, transport, serializer):
    session = await auth.carl(transport=transport, serializer=serializer)

    assert_welcome(session, SECURE, "carl", "admin", "wampcra")
    [challenge] = session.challenges
    extra = challenge.extra
    assert set(extra) >= {"challenge", "salt", "iterations", "keylen"}, extra
    assert isinstance(extra["salt"], str) and extra["salt"], extra
    assert isinstance(extra["iterations"], int) and extra["iterations"] > 0, extra
    assert extra["keylen"] == 32, extra
    # The signed challenge names who the session will be (spec: authentication_cra.md).
    signed = json.loads(extra["challenge"])
    assert signed["authid"] == "carl" and signed["authrole"] == "admin", signed
    assert signed["authmethod"] == "wampcra" and signed["authprovider"] == "junction", signed
    assert signed["nonce"] and signed["timestamp"], signed
    assert signed["session"] == session.joined.result().session, (
        "the session id in the WAMP-CRA challenge must be the one WELCOME assigns"
    )


@pytest.mark.parametrize("transport,serializer", [("websocket", "json"), ("rawsocket", "cbor")])
async def test_unsalted_wampcra_welcomes_una_signing_with_the_plain_secret(auth, transport,
                                                                          serializer):
    session = await auth.autobahn_auth(SECURE, ["wampcra"], "una", wampcra_unsalted(UNA_SECRET),
                                       transport=transport, serializer=serializer)

    assert_welcome(session, SECURE, "una", "user", "wampcra")
    [challenge] = session.challenges
    signed = json.loads(challenge.extra["challenge"])
    assert signed["authid"] == "una" and signed["session"] == session.joined.result().session


async def test_unsalted_wampcra_with_autobahns_authwampcra_in_a_component(router):
    # Component's {"wampcra": {...}} is AuthWampCra: no salt in the challenge, so it signs with
    # the secret directly.
    details, _ = await join_with_component(
        {"type": "websocket", "url": router.ws_url, "serializers": ["msgpack"]}, SECURE,
        {"wampcra": {"authid": "una", "secret": UNA_SECRET}})
    assert (details.authid, details.authrole, details.authmethod) == ("una", "user", "wampcra")


async def test_unsalted_wampcra_refuses_a_wrong_secret_like_any_wrong_password(auth):
    wrong = await join_fails(auth.autobahn_auth(SECURE, ["wampcra"], "una",
                                                wampcra_unsalted("not-" + UNA_SECRET)))
    salted_wrong = await join_fails(auth.autobahn_auth(SECURE, ["wampcra"], "carl",
                                                       wampcra("not-" + CARL_SECRET)))
    assert wrong.reason == salted_wrong.reason == AUTHENTICATION_FAILED, (wrong, salted_wrong)
    assert shape(wrong.message, "una") == shape(salted_wrong.message, "carl")
    # The salted answer (PBKDF2 key) is no answer to an unsalted challenge: her key is the
    # secret itself.
    una_salted = await join_fails(auth.autobahn_auth(
        SECURE, ["wampcra"], "una",
        lambda c: compute_wcs(derive_key(UNA_SECRET, "salt", 1000, 32), c.extra["challenge"])))
    assert una_salted.reason == AUTHENTICATION_FAILED, una_salted


@pytest.mark.parametrize("transport,serializer",
                         [("websocket", "cbor"), ("rawsocket", "msgpack"), ("rawsocket", "json")])
async def test_cryptosign_welcomes_ann_by_her_key(auth, transport, serializer):
    session = await auth.autobahn_auth(
        SECURE, ["cryptosign"], "ann", cryptosign(ANN_KEY),
        authextra={"pubkey": ANN_KEY.public_key()}, transport=transport, serializer=serializer,
    )

    assert_welcome(session, SECURE, "ann", "admin", "cryptosign")
    [challenge] = session.challenges
    assert set(challenge.extra) == {"challenge", "channel_binding"}, challenge.extra
    assert re.fullmatch(r"[0-9a-f]{64}", challenge.extra["challenge"]), challenge.extra
    assert challenge.extra["channel_binding"] is None, challenge.extra


async def test_cryptosign_with_the_component_authentication_config(router):
    """The way an Autobahn application usually configures Cryptosign: a Component with
    ``authentication={"cryptosign": {"authid": ..., "privkey": <hex>}}``."""
    details, _ = await join_with_component(
        {"type": "websocket", "url": router.ws_url, "serializers": ["json"]}, SECURE,
        {"cryptosign": {"authid": "ann", "privkey": ANN_SEED.hex()}})
    assert (details.authid, details.authrole, details.authmethod, details.authprovider) == (
        "ann", "admin", "cryptosign", "junction"), details


@pytest.mark.parametrize("transport,serializer",
                         [("websocket", "json"), ("rawsocket", "cbor"), ("websocket", "msgpack")])
async def test_scram_welcomes_joe_and_autobahn_verifies_the_server_signature(auth, transport,
                                                                            serializer):
    authenticator, respond = scram("joe", JOE_SECRET)
    session = await auth.autobahn_auth(SECURE, ["scram"], "joe", respond,
                                       authextra=authenticator.authextra,
                                       transport=transport, serializer=serializer)

    assert_welcome(session, SECURE, "joe", "user", "scram")
    [challenge] = session.challenges
    extra = challenge.extra
    # Exactly what Autobahn accepts (it refuses a challenge with any other attribute).
    assert set(extra) == {"nonce", "salt", "kdf", "iterations", "memory"}, extra
    assert extra["kdf"] == "argon2id-13", extra
    assert extra["nonce"].startswith(authenticator.authextra["nonce"]), extra
    assert len(base64.b64decode(extra["salt"])) == 16, extra
    assert isinstance(extra["iterations"], int) and extra["iterations"] > 0, extra
    assert isinstance(extra["memory"], int) and extra["memory"] > 0, extra
    # Mutual authentication: the router proves it holds joe's ServerKey.
    authextra = session.joined.result().authextra
    assert "scram_server_signature" in authextra, authextra
    assert authenticator.on_welcome(session, authextra) is None
    forged = {"scram_server_signature": base64.b64encode(bytes(32)).decode("ascii")}
    assert authenticator.on_welcome(session, forged) is not None, "Autobahn checks it"


async def test_scram_with_the_component_authentication_config(router):
    """The way an Autobahn application configures WAMP-SCRAM: a Component with
    ``authentication={"scram": {"authid": ..., "password": ...}}``; Autobahn checks the
    server signature in WELCOME itself and leaves if it is wrong."""
    details, _ = await join_with_component(
        {"type": "websocket", "url": router.ws_url, "serializers": ["cbor"]}, SECURE,
        {"scram": {"authid": "carl", "password": CARL_SECRET}})
    assert (details.authid, details.authrole, details.authmethod, details.authprovider) == (
        "carl", "admin", "scram", "junction"), details


async def test_scram_fails_alike_for_a_wrong_password_and_an_unknown_user(auth):
    wrong_client, wrong_answer = scram("joe", "not-it")
    wrong = await join_fails(auth.autobahn_auth(SECURE, ["scram"], "joe", wrong_answer,
                                                authextra=wrong_client.authextra))
    unknown_client, unknown_answer = scram("nobody", JOE_SECRET)
    unknown = await join_fails(auth.autobahn_auth(SECURE, ["scram"], "nobody", unknown_answer,
                                                  authextra=unknown_client.authextra))
    # ann exists but has no password, so no SCRAM credential: the same decoy path.
    keyonly_client, keyonly_answer = scram("ann", JOE_SECRET)
    keyonly = await join_fails(auth.autobahn_auth(SECURE, ["scram"], "ann", keyonly_answer,
                                                  authextra=keyonly_client.authextra))

    for failed, authid in ((wrong, "joe"), (unknown, "nobody"), (keyonly, "ann")):
        assert failed.reason == AUTHENTICATION_FAILED, failed
        assert_reveals_nothing(failed.message)
        assert shape(failed.message, authid) == shape(wrong.message, "joe"), (failed, wrong)


async def test_scram_decoy_challenges_look_like_real_ones(auth):
    """An unknown user is challenged like a known one: same attributes, same costs, a salt of
    the same length that stays the same for the authid (asking twice reveals nothing)."""
    challenges = {}
    for authid in ("joe", "nobody", "nobody"):
        client, _ = scram(authid, "irrelevant")
        _, reply = await auth.raw_hello(SECURE, {"authmethods": ["scram"], "authid": authid,
                                                 "authextra": client.authextra})
        assert reply[:2] == [CHALLENGE, "scram"], reply
        challenges.setdefault(authid, []).append(reply[2])
    [joe], [nobody, again] = challenges["joe"], challenges["nobody"]
    assert set(joe) == set(nobody), (joe, nobody)
    for name in ("kdf", "iterations", "memory"):
        assert joe[name] == nobody[name], (joe, nobody)
    assert len(joe["salt"]) == len(nobody["salt"]), (joe, nobody)
    assert again["salt"] == nobody["salt"], (again, nobody)
    assert again["nonce"] != nobody["nonce"], (again, nobody)


async def test_the_first_method_the_realm_accepts_in_the_clients_order_is_challenged(auth):
    # secure accepts all three: the client's first choice wins.
    session = await auth.autobahn_auth(SECURE, ["wampcra", "ticket"], "joe", wampcra(JOE_SECRET))
    assert [c.method for c in session.challenges] == ["wampcra"]
    assert_welcome(session, SECURE, "joe", "user", "wampcra")

    # ticketonly skips the methods it does not accept.
    session = await auth.autobahn_auth(TICKET_ONLY, ["wampcra", "cryptosign", "ticket"], "joe",
                                       ticket(JOE_TICKETONLY_SECRET))
    assert [c.method for c in session.challenges] == ["ticket"]
    assert_welcome(session, TICKET_ONLY, "joe", "user", "ticket")


async def test_users_belong_to_their_realm(auth):
    """joe of ticketonly is not joe of secure, and carl exists only in secure."""
    failed = await join_fails(auth.autobahn_auth(TICKET_ONLY, ["ticket"], "joe",
                                                 ticket(JOE_SECRET)))
    assert failed.reason == AUTHENTICATION_FAILED, failed
    failed = await join_fails(auth.autobahn_auth(TICKET_ONLY, ["ticket"], "carl",
                                                 ticket(CARL_SECRET)))
    assert failed.reason == AUTHENTICATION_FAILED, failed


# ------------------------------------------------------------------------------------------------
# Authentication failures
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ticket", "wampcra"])
async def test_a_wrong_password_and_an_unknown_user_fail_alike(auth, method):
    answer = ticket if method == "ticket" else wampcra

    wrong = await join_fails(auth.autobahn_auth(SECURE, [method], "joe", answer("not-it")))
    unknown = await join_fails(auth.autobahn_auth(SECURE, [method], "nobody", answer("not-it")))

    assert wrong.reason == unknown.reason == AUTHENTICATION_FAILED, (wrong, unknown)
    assert_reveals_nothing(wrong.message)
    assert shape(wrong.message, "joe") == shape(unknown.message, "nobody"), (wrong, unknown)


async def test_cryptosign_fails_alike_for_a_wrong_key_a_forged_signature_and_an_unknown_user(auth):
    # ann announcing a key that is not hers, and signing with it.
    not_hers = await join_fails(auth.autobahn_auth(
        SECURE, ["cryptosign"], "ann", cryptosign(OTHER_KEY),
        authextra={"pubkey": OTHER_KEY.public_key()}))
    # ann announcing her key, but signing with another one.
    forged = await join_fails(auth.autobahn_auth(
        SECURE, ["cryptosign"], "ann", cryptosign(OTHER_KEY),
        authextra={"pubkey": ANN_KEY.public_key()}))
    # A user the realm does not know (who nevertheless gets a challenge).
    unknown = await join_fails(auth.autobahn_auth(
        SECURE, ["cryptosign"], "nobody", cryptosign(OTHER_KEY),
        authextra={"pubkey": OTHER_KEY.public_key()}))

    # joe has a password and no key.
    keyless = await join_fails(auth.autobahn_auth(
        SECURE, ["cryptosign"], "joe", cryptosign(OTHER_KEY),
        authextra={"pubkey": OTHER_KEY.public_key()}))

    for failed in (not_hers, forged, unknown, keyless):
        assert failed.reason == AUTHENTICATION_FAILED, failed
        assert_reveals_nothing(failed.message)
    assert shape(not_hers.message, "ann") == shape(forged.message, "ann") == shape(
        unknown.message, "nobody") == shape(keyless.message, "joe"), (
        not_hers, forged, unknown, keyless)


@pytest.mark.parametrize("method", ["ticket", "wampcra"])
async def test_a_user_without_a_password_cannot_use_password_methods(auth, method):
    answer = ticket if method == "ticket" else wampcra
    keyholder = await join_fails(auth.autobahn_auth(SECURE, [method], "ann", answer("")))
    wrong = await join_fails(auth.autobahn_auth(SECURE, [method], "joe", answer("")))
    assert keyholder.reason == wrong.reason == AUTHENTICATION_FAILED, (keyholder, wrong)
    assert shape(keyholder.message, "ann") == shape(wrong.message, "joe"), (keyholder, wrong)


@pytest.mark.parametrize("method", ["ticket", "wampcra", "cryptosign"])
async def test_an_unknown_user_is_challenged_like_a_known_one(auth, method):
    """Whether an authid exists must not show before AUTHENTICATE either: an unknown authid gets
    the same kind of CHALLENGE as a known one (docs/security.md)."""
    authextra = {"pubkey": OTHER_KEY.public_key()} if method == "cryptosign" else {}
    known = "ann" if method == "cryptosign" else "joe"
    _, known_reply = await auth.raw_hello(SECURE, {"authmethods": [method], "authid": known,
                                                   "authextra": authextra})
    _, unknown_reply = await auth.raw_hello(SECURE, {"authmethods": [method], "authid": "nobody",
                                                     "authextra": authextra})

    assert known_reply[:2] == [CHALLENGE, method], known_reply
    assert unknown_reply[:2] == [CHALLENGE, method], unknown_reply
    assert set(known_reply[2]) == set(unknown_reply[2]), (known_reply, unknown_reply)


async def test_the_wampcra_salt_does_not_tell_known_users_from_unknown_ones(auth):
    """A decoy challenge for an unknown authid must look like a real one: a salt of the same
    form, the same iteration count and key length. Otherwise the salt alone tells which authids
    exist, which the failure messages take care not to reveal."""
    challenges = {}
    for authid in ("joe", "carl", "nobody", "nobody-else"):
        _, reply = await auth.raw_hello(SECURE, {"authmethods": ["wampcra"], "authid": authid})
        assert reply[:2] == [CHALLENGE, "wampcra"], reply
        challenges[authid] = reply[2]

    def form(extra):
        salt = extra["salt"]
        charset = "hex" if re.fullmatch(r"[0-9a-f]+", salt) else "other"
        return (len(salt), charset, extra["iterations"], extra["keylen"])

    forms = {authid: form(extra) for authid, extra in challenges.items()}
    assert forms["nobody"] == forms["joe"] == forms["carl"] == forms["nobody-else"], (
        f"salt (length, charset), iterations, keylen per authid: {forms}; salts: "
        f"{ {a: e['salt'] for a, e in challenges.items()} }"
    )


async def test_wire_ticket_flow_and_failure(auth):
    """The exact frames: CHALLENGE ``[4, "ticket", {}]``, WELCOME details, ABORT on a wrong
    ticket (spec: authentication_ticket.md)."""
    peer, reply = await auth.raw_hello(SECURE, {"authmethods": ["ticket"], "authid": "joe"},
                                       "rawsocket", "msgpack")
    assert reply == [CHALLENGE, "ticket", {}], reply
    await peer.send([AUTHENTICATE, JOE_SECRET, {}])
    welcome = await peer.recv()
    assert welcome[0] == WELCOME, welcome
    details = welcome[2]
    assert {k: details.get(k) for k in ("realm", "authid", "authrole", "authmethod",
                                        "authprovider")} == {
        "realm": SECURE, "authid": "joe", "authrole": "user", "authmethod": "ticket",
        "authprovider": "junction"}, details
    assert "broker" in details["roles"] and "dealer" in details["roles"], details

    peer, reply = await auth.raw_hello(SECURE, {"authmethods": ["ticket"], "authid": "joe"})
    assert reply == [CHALLENGE, "ticket", {}], reply
    await peer.send([AUTHENTICATE, JOE_SECRET + "x", {}])
    abort = await peer.expect_abort(AUTHENTICATION_FAILED)
    assert isinstance(abort[1].get("message"), str), abort


async def test_wire_cryptosign_with_the_bare_64_octet_signature(auth):
    """Autobahn sends signature + challenge (96 octets); the bare signature is accepted too."""
    signer = nacl.signing.SigningKey(ANN_SEED)
    peer, reply = await auth.raw_hello(SECURE, {
        "authmethods": ["cryptosign"], "authid": "ann",
        "authextra": {"pubkey": ANN_KEY.public_key()}}, "websocket", "cbor")
    assert reply[:2] == [CHALLENGE, "cryptosign"], reply
    challenge = bytes.fromhex(reply[2]["challenge"])
    await peer.send([AUTHENTICATE, signer.sign(challenge).signature.hex(), {}])
    welcome = await peer.recv()
    assert welcome[0] == WELCOME, welcome
    assert (welcome[2]["authid"], welcome[2]["authmethod"]) == ("ann", "cryptosign"), welcome


async def test_a_method_the_realm_does_not_accept_is_refused_with_the_accepted_ones(auth):
    # Anonymous (Autobahn's default) on a realm that does not admit anonymous sessions.
    failed = await join_fails(auth.anonymous(SECURE))
    assert failed.reason == NO_MATCHING_AUTH_METHOD, failed
    for method in ("ticket", "wampcra", "cryptosign"):
        assert method in failed.message, failed

    # Methods this realm does not accept (it accepts only ticket).
    failed = await join_fails(auth.autobahn_auth(TICKET_ONLY, ["scram", "trust"], "joe",
                                                 ticket(JOE_TICKETONLY_SECRET)))
    assert failed.reason == NO_MATCHING_AUTH_METHOD, failed
    assert "ticket" in failed.message, failed
    assert "wampcra" not in failed.message and "cryptosign" not in failed.message, failed

    # A method Junction implements but this realm does not accept.
    peer, reply = await auth.raw_hello(TICKET_ONLY, {"authmethods": ["wampcra"],
                                                     "authid": "joe"})
    assert reply[0] == ABORT and reply[2] == NO_MATCHING_AUTH_METHOD, reply
    assert "ticket" in reply[1]["message"], reply


async def test_an_unknown_realm_is_refused_before_any_challenge(auth):
    failed = await join_fails(auth.autobahn_auth("com.example.nowhere", ["ticket"], "joe",
                                                 ticket(JOE_SECRET)))
    assert failed.reason == NO_SUCH_REALM, failed


# ------------------------------------------------------------------------------------------------
# Authentication with xconn
# ------------------------------------------------------------------------------------------------


async def test_xconn_ticket_wampcra_and_cryptosign(auth):
    joe = await auth.xconn_auth(SECURE, xconn.TicketAuthenticator("joe", JOE_SECRET, {}),
                                "websocket", "json")
    carl = await auth.xconn_auth(SECURE, xconn.WAMPCRAAuthenticator("carl", CARL_SECRET, {}),
                                 "rawsocket", "msgpack")
    ann = await auth.xconn_auth(SECURE, xconn.CryptoSignAuthenticator("ann", ANN_SEED.hex(), {}),
                                "websocket", "cbor")

    # xconn signs with the secret itself when the challenge has no salt (unsalted WAMP-CRA).
    una = await auth.xconn_auth(SECURE, xconn.WAMPCRAAuthenticator("una", UNA_SECRET, {}),
                                "websocket", "msgpack")

    for session, authid, authrole in ((joe, "joe", "user"), (carl, "carl", "admin"),
                                      (ann, "ann", "admin"), (una, "una", "user")):
        details = session._base_session.session_details
        assert (details.realm, details.authid, details.authrole) == (SECURE, authid, authrole)

    # And they work together within their grants: ann registers, joe calls.
    async def clock(invocation):
        return Result(args=["12:00"])

    await asyncio.wait_for(ann.register("com.app.time", clock), RECV_TIMEOUT)
    result = await asyncio.wait_for(joe.call("com.app.time"), RECV_TIMEOUT)
    assert result.args == ["12:00"]


@pytest.mark.parametrize("transport,serializer", [("websocket", "msgpack"), ("rawsocket", "cbor")])
async def test_xconn_wrong_credentials_fail(auth, transport, serializer):
    attempts = [
        xconn.TicketAuthenticator("joe", "wrong", {}),
        xconn.WAMPCRAAuthenticator("carl", "wrong", {}),
        xconn.WAMPCRAAuthenticator("una", "wrong", {}),
        xconn.CryptoSignAuthenticator("ann", OTHER_SEED.hex(), {}),
        xconn.TicketAuthenticator("nobody", "wrong", {}),
    ]
    for authenticator in attempts:
        with pytest.raises(XconnAbort) as failed:
            await auth.xconn_auth(SECURE, authenticator, transport, serializer)
        assert failed.value.message == AUTHENTICATION_FAILED, (authenticator, failed.value)


async def test_cancel_without_the_cancel_permission_is_refused_and_the_callee_runs_on(auth):
    """Nobody in ``secure`` has ``wamp.cancel``: joe's CANCEL ends his call with ERROR
    ``wamp.error.not_authorized`` naming the permission and the procedure (an ERROR for the CALL,
    which Autobahn accepts after a CANCEL), and carl's Autobahn endpoint is not interrupted."""
    carl = await auth.carl()
    release = asyncio.Event()
    outcome = []

    async def slow():
        try:
            await asyncio.wait_for(release.wait(), RECV_TIMEOUT)
            outcome.append("finished")
            return "late"
        except asyncio.CancelledError:
            outcome.append("interrupted")
            raise

    await register(carl, "com.app.slow", slow)
    joe, challenge = await auth.raw_hello(SECURE, {"authmethods": ["ticket"], "authid": "joe"})
    assert challenge[0] == CHALLENGE, challenge
    await joe.send([AUTHENTICATE, JOE_SECRET, {}])
    assert (await joe.recv())[0] == 2
    await joe.send([48, 11, {}, "com.app.slow", []])
    await asyncio.sleep(0.2)  # the INVOCATION reaches carl
    await joe.send([49, 11, {"mode": "kill"}])
    assert await joe.recv() == [8, 48, 11, {}, NOT_AUTHORIZED, [
        'permission wamp.cancel on "com.app.slow" is not granted to this session']]
    release.set()
    for _ in range(50):  # bounded: carl's endpoint returns as soon as it is released
        if outcome:
            break
        await asyncio.sleep(0.02)
    assert outcome == ["finished"], outcome
    # His result went nowhere: joe's next reply is the one to his next call.
    await joe.send([48, 12, {}, "com.app.time", []])
    reply = await joe.recv()
    assert reply[:3] == [8, 48, 12], reply  # no callee for the clock: an ERROR for call 12


async def test_xconn_denied_call_fails_with_not_authorized(auth):
    eve = await auth.xconn_auth(SECURE, xconn.TicketAuthenticator("eve", EVE_SECRET, {}))
    with pytest.raises(XconnError) as denied:
        await asyncio.wait_for(eve.call("com.app.add", [1, 2]), RECV_TIMEOUT)
    assert denied.value.message == NOT_AUTHORIZED, denied.value
    assert list(denied.value.args) == [
        'permission wamp.call on "com.app.add" is not granted to this session'], denied.value.args


# ------------------------------------------------------------------------------------------------
# Authorization
# ------------------------------------------------------------------------------------------------


async def test_a_user_may_call_and_subscribe_but_not_register_or_publish(auth):
    carl = await auth.carl()
    joe = await auth.joe(transport="rawsocket", serializer="cbor")
    await register(carl, "com.app.add", lambda a, b: a + b)

    assert await call(joe, "com.app.add", 2, 3) == 5
    events, _ = await subscribe_collector(joe, "com.app.news")

    assert_not_authorized(await refused(joe.register(lambda: None, "com.app.add2")),
                          "wamp.register", "com.app.add2")
    assert_not_authorized(
        await refused(joe.publish("com.app.news", "hi", options=PublishOptions(acknowledge=True))),
        "wamp.publish", "com.app.news")
    assert_not_authorized(await refused(joe.call("com.other.thing")),
                          "wamp.call", "com.other.thing")
    assert_not_authorized(await refused(joe.subscribe(lambda: None, "com.other.news")),
                          "wamp.subscribe", "com.other.news")
    # Meta procedures are checked like any other procedure.
    assert_not_authorized(await refused(joe.call("wamp.session.count")),
                          "wamp.call", "wamp.session.count")

    # carl may publish on com.app.news; joe's subscription works.
    await asyncio.wait_for(
        carl.publish("com.app.news", "hello", options=PublishOptions(acknowledge=True)),
        RECV_TIMEOUT)
    [(args, _, details)] = await events.wait_for(1)
    assert args == ("hello",)


async def test_disclosure_grants_tell_who_calls_and_publishes_on_their_uris_only(auth):
    """``wamp.disclose_caller`` on com.app.open. and ``wamp.disclose_publisher`` on com.app.chat
    are granted to joe alone: his calls and publications there carry his identity, without
    ``disclose_me`` (which Autobahn|Python cannot send); una's (also a user) and joe's elsewhere
    do not."""
    carl = await auth.carl()
    joe = await auth.joe()
    una = await auth.autobahn_auth(SECURE, ["wampcra"], "una", wampcra_unsalted(UNA_SECRET))

    def whoami(details=None):
        return [details.caller, details.caller_authid, details.caller_authrole]

    for procedure in ("com.app.open.whoami", "com.app.whoami"):
        await asyncio.wait_for(carl.register(whoami, procedure,
                                             options=RegisterOptions(details_arg="details")),
                               RECV_TIMEOUT)
    joe_id = joe.joined.result().session
    assert await call(joe, "com.app.open.whoami") == [joe_id, "joe", "user"]
    assert await call(joe, "com.app.whoami") == [None, None, None]
    assert await call(una, "com.app.open.whoami") == [None, None, None]

    events, _ = await subscribe_collector(carl, "com.app.chat")
    for publisher in (joe, una):
        await asyncio.wait_for(publisher.publish("com.app.chat", "hi",
                                                 options=PublishOptions(acknowledge=True)),
                               RECV_TIMEOUT)
    [(_, _, from_joe), (_, _, from_una)] = await events.wait_for(2)
    assert (from_joe.publisher, from_joe.publisher_authid, from_joe.publisher_authrole) == (
        joe_id, "joe", "user"), from_joe
    assert (from_una.publisher, from_una.publisher_authid) == (None, None), from_una


async def test_the_refusal_message_names_permission_and_uri_exactly(auth):
    joe = await auth.joe()
    error = await refused(joe.register(lambda a, b: a + b, "com.app.add"))
    assert error.error == NOT_AUTHORIZED
    assert error.args == ('permission wamp.register on "com.app.add" is not granted to this session',)


async def test_a_nested_group_inherits_the_grants_of_its_parent(auth):
    """carl is in admin, admin is in user: carl has the admin grants and the user grants."""
    carl = await auth.carl(transport="rawsocket", serializer="json")
    ann = await auth.autobahn_auth(SECURE, ["cryptosign"], "ann", cryptosign(ANN_KEY),
                                   authextra={"pubkey": ANN_KEY.public_key()},
                                   serializer="msgpack")

    # admin grants
    await register(carl, "com.app.mul", lambda a, b: a * b)
    # user grants, inherited
    assert await call(ann, "com.app.mul", 6, 7) == 42
    events, _ = await subscribe_collector(ann, "com.app.news")
    await asyncio.wait_for(
        carl.publish("com.app.news", 1, options=PublishOptions(acknowledge=True)), RECV_TIMEOUT)
    await events.wait_for(1)
    # and not more: users have no grant to subscribe under com.other.
    assert_not_authorized(await refused(ann.subscribe(lambda: None, "com.other.news")),
                          "wamp.subscribe", "com.other.news")


async def test_grants_to_all_to_one_authid_and_by_wildcard(auth):
    carl = await auth.carl()
    joe = await auth.joe()
    eve = await auth.eve(serializer="cbor")
    await register(carl, "com.app.time", lambda: "12:00")
    await register(carl, "com.device.d1.status", lambda: "ok")
    await register(carl, "com.device.d1.reset", lambda: "reset")

    # "all": eve (group guest, no grants of its own) may call the clock, and nothing else.
    assert await call(eve, "com.app.time") == "12:00"
    assert_not_authorized(await refused(eve.call("com.app.add")), "wamp.call", "com.app.add")
    assert_not_authorized(await refused(eve.subscribe(lambda: None, "com.app.news")),
                          "wamp.subscribe", "com.app.news")

    # One authid: joe may subscribe to his inbox, carl may not.
    await asyncio.wait_for(joe.subscribe(lambda *a: None, "com.joe.inbox"), RECV_TIMEOUT)
    assert_not_authorized(await refused(carl.subscribe(lambda: None, "com.joe.inbox")),
                          "wamp.subscribe", "com.joe.inbox")

    # Wildcard: users may call any device's status, not its reset.
    assert await call(joe, "com.device.d1.status") == "ok"
    assert_not_authorized(await refused(joe.call("com.device.d1.reset")),
                          "wamp.call", "com.device.d1.reset")


async def test_a_user_in_no_group_does_not_get_the_grants_of_group_user(auth):
    """nora is in no group. Grants name groups, so she must not get the grants of group
    "user", whatever authrole her session reports."""
    carl = await auth.carl()
    nora = await auth.autobahn_auth(SECURE, ["ticket"], "nora", ticket(NORA_SECRET))
    await register(carl, "com.app.time", lambda: "12:00")
    await register(carl, "com.app.add", lambda a, b: a + b)

    assert await call(nora, "com.app.time") == "12:00"
    details = nora.joined.result()
    try:
        result = await call(nora, "com.app.add", 1, 2)
    except ApplicationError as error:
        assert_not_authorized(error, "wamp.call", "com.app.add")
    else:
        pytest.fail(
            f"nora (groups = []) called com.app.add, granted only to group user, and got "
            f"{result!r}; her WELCOME said authrole {details.authrole!r}"
        )


async def test_unsubscribe_and_unregister_are_checked_too(auth):
    joe = await auth.joe()
    carl = await auth.carl()

    # joe may subscribe under com.sticky. but not unsubscribe there; under com.app. he may.
    sticky = await asyncio.wait_for(joe.subscribe(lambda *a: None, "com.sticky.note"),
                                    RECV_TIMEOUT)
    assert_not_authorized(await refused(sticky.unsubscribe()),
                          "wamp.unsubscribe", "com.sticky.note")
    news = await asyncio.wait_for(joe.subscribe(lambda *a: None, "com.app.news"), RECV_TIMEOUT)
    await asyncio.wait_for(news.unsubscribe(), RECV_TIMEOUT)

    # carl may register under com.device. but not unregister there; under com.app. he may.
    device = await register(carl, "com.device.d2.status", lambda: "ok")
    assert_not_authorized(await refused(device.unregister()),
                          "wamp.unregister", "com.device.d2.status")
    app = await register(carl, "com.app.sub", lambda a, b: a - b)
    await asyncio.wait_for(app.unregister(), RECV_TIMEOUT)


async def test_an_unacknowledged_refused_publish_is_silent_and_delivers_nothing(auth):
    carl = await auth.carl()
    events, _ = await subscribe_collector(carl, "com.app.", match="prefix")
    await register(carl, "com.app.time", lambda: "12:00")
    joe, _ = await auth.raw_hello(SECURE, {"authmethods": ["ticket"], "authid": "joe"})
    await joe.send([AUTHENTICATE, JOE_SECRET, {}])
    assert (await joe.recv())[0] == WELCOME

    # Refused (users publish on com.app.chat only), not acknowledged: no ERROR ...
    await joe.send([PUBLISH, joe.next_request_id(), {}, "com.app.news", ["secret"]])
    request, reply = await joe.request(CALL, {}, "com.app.time")
    assert reply[:2] == [RESULT, request], f"expected the marker RESULT first, got {reply!r}"
    # ... and no event: the subscriber's first event is joe's next, allowed publication.
    await joe.send([PUBLISH, joe.next_request_id(), {}, "com.app.chat", ["marker"]])
    items = await events.wait_for(1)
    assert items[0][0] == ("marker",), items

    # Acknowledged, the same refusal is an ERROR with the message.
    request, reply = await joe.request(PUBLISH, {"acknowledge": True}, "com.app.news", ["x"])
    assert_error(reply, PUBLISH, request, NOT_AUTHORIZED)
    assert reply[5] == ['permission wamp.publish on "com.app.news" is not granted to this session']


async def test_a_prefix_subscription_needs_a_grant_covering_the_whole_prefix(auth):
    """joe may subscribe to the topic com.feed.public (exact grant). A prefix subscription to
    "com.feed.public" would also deliver com.feed.public.internal and com.feed.publicity, which
    no grant gives him, so the router must refuse it rather than check only the pattern's text.
    """
    joe, _ = await auth.raw_hello(SECURE, {"authmethods": ["ticket"], "authid": "joe"})
    await joe.send([AUTHENTICATE, JOE_SECRET, {}])
    assert (await joe.recv())[0] == WELCOME

    exact = await joe.subscribe("com.feed.public")
    assert exact
    request, reply = await joe.request(SUBSCRIBE, {"match": "prefix"}, "com.feed.public")
    assert reply[0] == ERROR, (
        "SUBSCRIBE {match: prefix} com.feed.public was accepted with only an exact grant on "
        f"com.feed.public: {reply!r}"
    )
    assert_error(reply, SUBSCRIBE, request, NOT_AUTHORIZED)


# ------------------------------------------------------------------------------------------------
# Anonymous sessions
# ------------------------------------------------------------------------------------------------


async def test_anonymous_sessions_where_allowed_get_the_anonymous_grants(auth):
    visitor = await auth.anonymous(OPEN, transport="rawsocket", serializer="msgpack")
    assert_welcome(visitor, OPEN, visitor.joined.result().authid, "anonymous", "anonymous")
    publisher = await auth.autobahn_auth(OPEN, ["ticket"], "joe", ticket(JOE_SECRET))
    assert_welcome(publisher, OPEN, "joe", "publisher", "ticket")

    await register(publisher, "com.public.time", lambda: "12:00")
    assert await call(visitor, "com.public.time") == "12:00"
    events, _ = await subscribe_collector(visitor, "com.public.news")
    await asyncio.wait_for(
        publisher.publish("com.public.news", "hi", options=PublishOptions(acknowledge=True)),
        RECV_TIMEOUT)
    await events.wait_for(1)

    assert_not_authorized(await refused(visitor.register(lambda: None, "com.public.mine")),
                          "wamp.register", "com.public.mine")
    assert_not_authorized(
        await refused(visitor.publish("com.public.news", 1,
                                      options=PublishOptions(acknowledge=True))),
        "wamp.publish", "com.public.news")


async def test_anonymous_or_ticket_in_the_clients_order_on_a_realm_that_accepts_both(auth):
    _, reply = await auth.raw_hello(OPEN, {"authmethods": ["ticket", "anonymous"],
                                           "authid": "joe"})
    assert reply == [CHALLENGE, "ticket", {}], reply
    _, reply = await auth.raw_hello(OPEN, {"authmethods": ["anonymous", "ticket"],
                                           "authid": "joe"})
    assert reply[0] == WELCOME, reply
    assert (reply[2]["authrole"], reply[2]["authmethod"]) == ("anonymous", "anonymous"), reply


async def test_anonymous_sessions_where_not_allowed_are_refused(auth):
    for realm in (SECURE, TICKET_ONLY):
        failed = await join_fails(auth.anonymous(realm))
        assert failed.reason == NO_MATCHING_AUTH_METHOD, failed

    # The list of accepted methods names anonymous only where it is accepted.
    for realm in (SECURE, OPEN, TICKET_ONLY):
        _, reply = await auth.raw_hello(realm, {"authmethods": ["cookie"], "authid": "joe"})
        assert reply[0] == ABORT and reply[2] == NO_MATCHING_AUTH_METHOD, reply
        message = reply[1]["message"]
        assert "ticket" in message, message
        assert ("anonymous" in message) == (realm == OPEN), (
            f"realm {realm} {'admits' if realm == OPEN else 'refuses'} anonymous sessions: "
            f"{message!r}"
        )


async def test_a_realm_without_security_allows_everything(auth):
    a = await auth.anonymous(PUBLIC)
    b = await auth.anonymous(PUBLIC, transport="rawsocket", serializer="cbor")
    await register(a, "com.anything.goes", lambda: "yes")
    assert await call(b, "com.anything.goes") == "yes"
    assert await call(b, "wamp.session.count") == 2


# ------------------------------------------------------------------------------------------------
# Realms are separate
# ------------------------------------------------------------------------------------------------


async def test_a_session_never_reaches_another_realm(auth):
    outsider = await auth.anonymous(PUBLIC)
    watcher = await auth.anonymous(PUBLIC, serializer="msgpack")
    carl = await auth.carl()
    joe = await auth.joe(transport="rawsocket", serializer="msgpack")

    # A procedure registered on public does not exist on secure.
    await register(outsider, "com.app.add", lambda a, b: a + b)
    assert (await refused(joe.call("com.app.add", 1, 2))).error == NO_SUCH_PROCEDURE
    assert await call(carl, "wamp.registration.lookup", "com.app.add") is None

    # Events published on public do not reach secure ...
    joe_events, _ = await subscribe_collector(joe, "com.app.chat")
    watcher_events, _ = await subscribe_collector(watcher, "com.app.chat")
    await asyncio.wait_for(outsider.publish("com.app.chat", "outside",
                                            options=PublishOptions(acknowledge=True)),
                           RECV_TIMEOUT)
    await watcher_events.wait_for(1)  # the publication was routed on public by now
    await asyncio.wait_for(carl.publish("com.app.chat", "inside",
                                        options=PublishOptions(acknowledge=True)), RECV_TIMEOUT)
    items = await joe_events.wait_for(1)
    assert items[0][0] == ("inside",), f"joe's first event came from another realm: {items}"
    # ... nor the other way round.
    await asyncio.wait_for(outsider.publish("com.app.chat", "outside again",
                                            options=PublishOptions(acknowledge=True)),
                           RECV_TIMEOUT)
    items = await watcher_events.wait_for(2)
    assert [args for args, _, _ in items] == [("outside",), ("outside again",)], items

    # The meta API of secure sees only secure's sessions.
    listed = await call(carl, "wamp.session.list")
    ids = {s.joined.result().session for s in (carl, joe)}
    others = {s.joined.result().session for s in (outsider, watcher)}
    assert set(listed) == ids, (listed, ids, others)
    assert await call(carl, "wamp.session.count") == 2
    joe_info = await call(carl, "wamp.session.get", joe.joined.result().session)
    assert (joe_info["authid"], joe_info["authrole"], joe_info["authmethod"],
            joe_info["authprovider"]) == ("joe", "user", "ticket", "junction"), joe_info
    missing = await refused(carl.call("wamp.session.get", outsider.joined.result().session))
    assert missing.error == "wamp.error.no_such_session", missing
