"""The admin API (Bondy's ``bondy.*`` procedures), the offline ``junction`` administration
commands and the durability of what they change, end to end with Autobahn|Python (see
docs/security.md; Bondy's reference: bondy/reference/wamp_api/{realm,user,group,grant,source}.md).

Every test starts a router with ``CONFIG`` below:

* ``junction.admin``, the admin realm (the default ``admin_realm``): ``root`` may call and
  subscribe to everything under ``bondy.``; ``auditor`` may only call ``bondy.realm.list``.
* ``com.acme``, a realm with security whose ``boss`` may use the admin API (on its own realm
  only, as only admin realm sessions may name another realm) and whose ``clerk`` may not.
* ``com.other``, another realm with security, which acme's boss must not reach.
* ``com.open``, a realm without security, which refuses the admin API.

Administrators log in with ticket, as users declared in the configuration file. Realms built in
a test (``com.shop`` and others) are created through the API, and their users join at once.
Tests named ``test_bondy_*`` check a detail Bondy's reference documents (error URIs, results,
reserved names, the ``resources`` grant form) where the router's own description is silent.

Checks that something is *not* delivered never sleep: the router sends a later event to the same
peer, and the test asserts that it is the next thing that peer received.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess

import pytest
import pytest_asyncio
from autobahn.wamp.cryptosign import CryptosignKey
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions

from conftest import ClientPool
from junction_harness import (
    RECV_TIMEOUT,
    STARTUP_TIMEOUT,
    JoinFailed,
    cryptosign_answer,
    join_autobahn_auth,
    join_with_component,
    subscribe_collector,
    ticket_answer,
    wampcra_answer,
)

ADMIN = "junction.admin"
ACME = "com.acme"
OTHER = "com.other"
OPEN = "com.open"
SHOP = "com.shop"
NOWHERE = "com.nowhere"

ROOT_SECRET = "root-secret-1"
AUDITOR_SECRET = "auditor-secret-1"
BOSS_SECRET = "boss-secret-1"
CLERK_SECRET = "clerk-secret-1"
SOMEONE_SECRET = "someone-secret-1"
ALICE_SECRET = "alice-secret-1"
BOB_SECRET = "bob-secret-1"

ALREADY_EXISTS = "bondy.error.already_exists"
NOT_FOUND = "bondy.error.not_found"
NO_SUCH_GROUPS = "bondy.error.no_such_groups"
INVALID_ARGUMENT = "wamp.error.invalid_argument"
NO_SUCH_REALM = "wamp.error.no_such_realm"
NOT_AUTHORIZED = "wamp.error.not_authorized"
AUTHENTICATION_FAILED = "wamp.error.authentication_failed"
NO_MATCHING_AUTH_METHOD = "wamp.error.no_matching_auth_method"

CONFIG = f"""
[[realms]]
name = "{ADMIN}"
anonymous = false

[realms.security]
authmethods = ["ticket", "wampcra"]

[[realms.security.users]]
authid = "root"
password = "{ROOT_SECRET}"
groups = ["operators"]

[[realms.security.users]]
authid = "auditor"
password = "{AUDITOR_SECRET}"
groups = ["auditors"]

[[realms.security.groups]]
name = "operators"

[[realms.security.groups]]
name = "auditors"

[[realms.security.grants]]
permissions = ["wamp.call", "wamp.subscribe", "wamp.unsubscribe"]
uri = "bondy."
match = "prefix"
roles = ["operators"]

[[realms.security.grants]]
permissions = ["wamp.call"]
uri = "bondy.realm.list"
roles = ["auditors"]

[[realms]]
name = "{ACME}"
anonymous = false

[realms.security]
authmethods = ["ticket"]

[[realms.security.users]]
authid = "boss"
password = "{BOSS_SECRET}"
groups = ["managers"]

[[realms.security.users]]
authid = "clerk"
password = "{CLERK_SECRET}"
groups = ["clerks"]

[[realms.security.groups]]
name = "managers"

[[realms.security.groups]]
name = "clerks"

[[realms.security.grants]]
permissions = ["wamp.call", "wamp.subscribe", "wamp.unsubscribe"]
uri = "bondy."
match = "prefix"
roles = ["managers"]

[[realms.security.grants]]
permissions = ["wamp.call"]
uri = "wamp.session.count"
roles = ["all"]

[[realms]]
name = "{OTHER}"
anonymous = false

[realms.security]
authmethods = ["ticket"]

[[realms.security.users]]
authid = "someone"
password = "{SOMEONE_SECRET}"

[[realms]]
name = "{OPEN}"
"""

pytestmark = pytest.mark.router_config(CONFIG)


# ------------------------------------------------------------------------------------------------
# Clients
# ------------------------------------------------------------------------------------------------


class AdminClients(ClientPool):
    """The conftest client pool, plus sessions that authenticate (closed at teardown too)."""

    async def login(self, realm: str, authid: str, secret: str, method: str = "ticket", **kw):
        answer = {"ticket": ticket_answer, "wampcra": wampcra_answer}[method](secret)
        session = await join_autobahn_auth(self.router, realm, [method], authid, answer, **kw)
        self._autobahn.append(session)
        return session

    async def login_key(self, realm: str, authid: str, key: CryptosignKey):
        session = await join_autobahn_auth(self.router, realm, ["cryptosign"], authid,
                                           cryptosign_answer(key),
                                           authextra={"pubkey": key.public_key()})
        self._autobahn.append(session)
        return session

    async def root(self):
        return await self.login(ADMIN, "root", ROOT_SECRET)

    async def boss(self):
        return await self.login(ACME, "boss", BOSS_SECRET)


@pytest_asyncio.fixture
async def admin(router):
    pool = AdminClients(router)
    yield pool
    await pool.close()


async def call(session, procedure: str, *args, **kwargs):
    return await asyncio.wait_for(session.call(procedure, *args, **kwargs), RECV_TIMEOUT)


async def refused(awaitable, error: str | None = None) -> ApplicationError:
    """The ApplicationError an Autobahn request fails with (checked against ``error`` when
    given); fails the test if the request succeeds."""
    try:
        result = await asyncio.wait_for(awaitable, RECV_TIMEOUT)
    except ApplicationError as e:
        if error is not None:
            assert e.error == error, f"expected {error}, got {e.error} {e.args!r}"
        return e
    pytest.fail(f"request succeeded with {result!r}, expected an ERROR {error or ''}")


async def join_fails(coro) -> JoinFailed:
    try:
        session = await coro
    except JoinFailed as e:
        return e
    pytest.fail(f"joined as {session.joined.result()!r}, expected an ABORT")


def welcome(session) -> tuple:
    d = session.joined.result()
    return d.realm, d.authid, d.authrole, d.authmethod


def denied(permission: str, uri: str) -> str:
    return f'permission {permission} on "{uri}" is not granted to this session'


async def build_shop(root) -> None:
    """Realm ``com.shop`` (ticket, wampcra, cryptosign): groups staff and managers (managers are
    staff too), users alice (manager) and bob (staff), managers may register under
    ``com.shop.api.``. Nobody may call there yet."""
    await call(root, "bondy.realm.create", {
        "uri": SHOP, "description": "the shop", "authmethods": ["ticket", "wampcra", "cryptosign"],
    })
    await call(root, "bondy.group.add", SHOP, {"name": "staff"})
    await call(root, "bondy.group.add", SHOP, {"name": "managers", "groups": ["staff"]})
    await call(root, "bondy.user.add", SHOP,
               {"username": "alice", "password": ALICE_SECRET, "groups": ["managers"]})
    await call(root, "bondy.user.add", SHOP,
               {"username": "bob", "password": BOB_SECRET, "groups": ["staff"]})
    await call(root, "bondy.grant.create", SHOP, {
        "permissions": ["wamp.register", "wamp.unregister"], "uri": "com.shop.api.",
        "match": "prefix", "roles": ["managers"],
    })


CALL_GRANT = {"permissions": ["wamp.call"], "uri": "com.shop.api.", "match": "prefix",
              "roles": ["staff"]}


async def register_price(session) -> None:
    await asyncio.wait_for(session.register(lambda item: f"{item}: 3 EUR", "com.shop.api.price"),
                           RECV_TIMEOUT)


# ------------------------------------------------------------------------------------------------
# Realms
# ------------------------------------------------------------------------------------------------


async def test_the_admin_realm_sees_and_describes_every_realm(admin):
    root = await admin.root()
    assert welcome(root) == (ADMIN, "root", "operators", "ticket")

    realms = await call(root, "bondy.realm.list")
    assert {r["uri"] for r in realms} >= {ADMIN, ACME, OTHER, OPEN}, realms

    acme = await call(root, "bondy.realm.get", ACME)
    assert (acme["uri"], acme["security_enabled"], acme["authmethods"]) == (ACME, True, ["ticket"])
    assert await call(root, "bondy.realm.security.is_enabled", ACME) is True
    assert await call(root, "bondy.realm.security.status", ACME) == "enabled"
    assert await call(root, "bondy.realm.security.is_enabled", OPEN) is False
    assert await call(root, "bondy.realm.security.status", OPEN) == "disabled"
    # The admin realm was declared in the file; it has security like any admin realm.
    assert (await call(root, "bondy.realm.get", ADMIN))["security_enabled"] is True
    # Without an argument: the caller's own realm.
    assert (await call(root, "bondy.realm.get"))["uri"] == ADMIN


async def test_a_realm_built_through_the_api_admits_its_new_users_at_once(admin):
    root = await admin.root()
    created = await call(root, "bondy.realm.create", {
        "uri": SHOP, "description": "the shop", "authmethods": ["ticket", "wampcra", "cryptosign"],
    })
    assert (created["uri"], created["description"], created["security_enabled"]) == (
        SHOP, "the shop", True)
    assert created["authmethods"] == ["ticket", "wampcra", "cryptosign"], created

    staff = await call(root, "bondy.group.add", SHOP, {"name": "staff"})
    assert (staff["name"], staff["groups"]) == ("staff", [])
    await call(root, "bondy.group.add", SHOP, {"name": "managers", "groups": ["staff"]})

    alice = await call(root, "bondy.user.add", SHOP,
                       {"username": "alice", "password": ALICE_SECRET, "groups": ["managers"]})
    assert (alice["username"], alice["groups"], alice["has_password"],
            alice["has_authorized_keys"]) == ("alice", ["managers"], True, False)
    assert ALICE_SECRET not in json.dumps(alice), "the result shows the password"
    await call(root, "bondy.user.add", SHOP,
               {"username": "bob", "password": BOB_SECRET, "groups": ["staff"]})
    carol_key = CryptosignKey.from_bytes(os.urandom(32))
    carol = await call(root, "bondy.user.add", SHOP, {
        "username": "carol", "authorized_keys": [carol_key.public_key()], "groups": ["staff"],
    })
    assert (carol["has_password"], carol["authorized_keys"]) == (
        False, [carol_key.public_key().lower()])

    register = {"permissions": ["wamp.register", "wamp.unregister"], "uri": "com.shop.api.",
                "match": "prefix", "roles": ["managers"]}
    assert await call(root, "bondy.grant.create", SHOP, register) is None
    await call(root, "bondy.grant.create", SHOP, CALL_GRANT)

    # The new users join at once, with each method; the authrole is their first group.
    a = await admin.login(SHOP, "alice", ALICE_SECRET, "ticket")
    assert welcome(a) == (SHOP, "alice", "managers", "ticket")
    b = await admin.login(SHOP, "bob", BOB_SECRET, "wampcra")
    assert welcome(b) == (SHOP, "bob", "staff", "wampcra")
    c = await admin.login_key(SHOP, "carol", carol_key)
    assert welcome(c) == (SHOP, "carol", "staff", "cryptosign")

    await register_price(a)
    assert await call(b, "com.shop.api.price", "tea") == "tea: 3 EUR"
    assert await call(c, "com.shop.api.price", "jam") == "jam: 3 EUR"
    # Managers are staff, so alice may call too; bob is not a manager.
    assert await call(a, "com.shop.api.price", "oil") == "oil: 3 EUR"
    e = await refused(b.register(lambda: None, "com.shop.api.discount"), NOT_AUTHORIZED)
    assert e.args[0] == denied("wamp.register", "com.shop.api.discount")

    # What the API reads back.
    users = await call(root, "bondy.user.list", SHOP)
    assert sorted(u["username"] for u in users) == ["alice", "bob", "carol"]
    assert (await call(root, "bondy.user.get", SHOP, "bob"))["groups"] == ["staff"]
    groups = await call(root, "bondy.group.list", SHOP)
    assert sorted(g["name"] for g in groups) == ["managers", "staff"]
    assert (await call(root, "bondy.group.get", SHOP, "managers"))["groups"] == ["staff"]

    def shape(grants):
        return sorted((tuple(g["permissions"]), g["uri"], g["match"], tuple(g["roles"]))
                      for g in grants)

    register_shape = (("wamp.register", "wamp.unregister"), "com.shop.api.", "prefix",
                      ("managers",))
    call_shape = (("wamp.call",), "com.shop.api.", "prefix", ("staff",))
    assert shape(await call(root, "bondy.realm.grants", SHOP)) == sorted(
        [register_shape, call_shape])
    # A user's grants include those of its groups, nested ones too.
    assert shape(await call(root, "bondy.user.grants", SHOP, "alice")) == sorted(
        [register_shape, call_shape])
    assert shape(await call(root, "bondy.user.grants", SHOP, "bob")) == [call_shape]
    assert shape(await call(root, "bondy.group.grants", SHOP, "staff")) == [call_shape]


async def test_grants_and_security_changes_apply_to_live_sessions_at_once(admin):
    root = await admin.root()
    await build_shop(root)
    alice = await admin.login(SHOP, "alice", ALICE_SECRET)
    bob = await admin.login(SHOP, "bob", BOB_SECRET, "wampcra")
    await register_price(alice)

    e = await refused(bob.call("com.shop.api.price", "tea"), NOT_AUTHORIZED)
    assert e.args[0] == denied("wamp.call", "com.shop.api.price")

    await call(root, "bondy.grant.create", SHOP, CALL_GRANT)
    assert await call(bob, "com.shop.api.price", "tea") == "tea: 3 EUR"

    assert await call(root, "bondy.grant.revoke", SHOP, CALL_GRANT) is None
    e = await refused(bob.call("com.shop.api.price", "tea"), NOT_AUTHORIZED)
    assert e.args[0] == denied("wamp.call", "com.shop.api.price")
    assert all(g["roles"] != ["staff"] for g in await call(root, "bondy.realm.grants", SHOP))

    # With security disabled nothing is checked; enabled again, the grants are back.
    await call(root, "bondy.realm.security.disable", SHOP)
    assert await call(root, "bondy.realm.security.status", SHOP) == "disabled"
    assert await call(bob, "com.shop.api.price", "tea") == "tea: 3 EUR"
    await call(root, "bondy.realm.security.enable", SHOP)
    assert await call(root, "bondy.realm.security.is_enabled", SHOP) is True
    await refused(bob.call("com.shop.api.price", "tea"), NOT_AUTHORIZED)


async def test_a_disclosure_grant_made_at_run_time_reveals_the_caller_until_revoked(admin):
    """``bondy.grant.create`` with ``wamp.disclose_caller`` (granted by name: a grant of ``all``
    permissions does not include it): bob's next call tells the callee who calls; revoked, the
    next one does not."""
    root = await admin.root()
    await build_shop(root)
    await call(root, "bondy.grant.create", SHOP, {**CALL_GRANT, "permissions": ["all"]})
    alice = await admin.login(SHOP, "alice", ALICE_SECRET)
    bob = await admin.login(SHOP, "bob", BOB_SECRET, "wampcra")

    def whoami(details=None):
        return details.caller_authid

    await asyncio.wait_for(alice.register(whoami, "com.shop.api.whoami",
                                          options=RegisterOptions(details_arg="details")),
                           RECV_TIMEOUT)
    assert await call(bob, "com.shop.api.whoami") is None
    disclose = {"permissions": ["wamp.disclose_caller"], "uri": "com.shop.api.",
                "match": "prefix", "roles": ["bob"]}
    await call(root, "bondy.grant.create", SHOP, disclose)
    assert ("com.shop.api.", ["wamp.disclose_caller"], ["bob"]) in [
        (g["uri"], g["permissions"], g["roles"]) for g in await call(root, "bondy.realm.grants",
                                                                        SHOP)]
    assert await call(bob, "com.shop.api.whoami") == "bob"
    await call(root, "bondy.grant.revoke", SHOP, disclose)
    assert await call(bob, "com.shop.api.whoami") is None


async def test_a_user_logs_in_by_alias_with_every_method_and_keeps_its_meta(admin, router):
    """``bondy.user.add_alias``: Autobahn|Python logs in with the alias as authid, with ticket,
    wampcra, cryptosign and scram (whose proof covers the authid as sent), and the session is
    the user's (WELCOME's authid is the username). ``meta`` is kept and shown as given; a
    removed alias no longer logs in."""
    root = await admin.root()
    realm, alias, secret = "com.alias", "dana@example.com", "dana-secret-1"
    key = CryptosignKey.from_bytes(os.urandom(32))
    await call(root, "bondy.realm.create", {
        "uri": realm, "authmethods": ["ticket", "wampcra", "cryptosign", "scram"]})
    dana = await call(root, "bondy.user.add", realm, {
        "username": "dana", "password": secret, "authorized_keys": [key.public_key()],
        "meta": {"team": "ops", "floor": 3}})
    assert (dana["aliases"], dana["meta"]) == ([], {"team": "ops", "floor": 3}), dana
    assert await call(root, "bondy.user.add_alias", realm, "dana", alias) is None
    assert (await call(root, "bondy.user.get", realm, "dana"))["aliases"] == [alias]

    for method in ("ticket", "wampcra"):
        session = await admin.login(realm, alias, secret, method)
        assert welcome(session) == (realm, "dana", "user", method)
    assert welcome(await admin.login_key(realm, alias, key)) == (realm, "dana", "user",
                                                                 "cryptosign")
    details, _ = await join_with_component(
        {"type": "websocket", "url": router.ws_url, "serializers": ["json"]}, realm,
        {"scram": {"authid": alias, "password": secret}})
    assert (details.authid, details.authmethod) == ("dana", "scram"), details

    # A name belongs to one user.
    e = await refused(call(root, "bondy.user.add", realm, {"username": alias}))
    assert e.error == "bondy.error.already_exists", e
    assert await call(root, "bondy.user.remove_alias", realm, "dana", alias) is None
    with pytest.raises(JoinFailed) as failed:
        await admin.login(realm, alias, secret)
    assert failed.value.reason == "wamp.error.authentication_failed", failed.value


async def test_revoking_some_permissions_or_roles_of_a_grant_leaves_the_others(admin):
    root = await admin.root()
    await build_shop(root)
    await call(root, "bondy.grant.create", SHOP, {
        "permissions": ["wamp.call", "wamp.subscribe"], "uri": "com.shop.news.",
        "match": "prefix", "roles": ["staff", "managers"]})

    def listed(grants):
        return sorted((g["uri"], tuple(g["permissions"]), tuple(g["roles"])) for g in grants)

    register = ("com.shop.api.", ("wamp.register", "wamp.unregister"), ("managers",))
    news = ("com.shop.news.", ("wamp.call", "wamp.subscribe"), ("staff", "managers"))
    assert listed(await call(root, "bondy.realm.grants", SHOP)) == [register, news]
    steps = [
        # One permission of the register grant (Bondy: revoke removes "the given permission").
        ({"permissions": ["wamp.unregister"], "uri": "com.shop.api.", "roles": ["managers"]},
         [("com.shop.api.", ("wamp.register",), ("managers",)), news]),
        # One role of the news grant.
        ({"permissions": ["wamp.call", "wamp.subscribe"], "uri": "com.shop.news.",
          "roles": ["staff"]},
         [("com.shop.api.", ("wamp.register",), ("managers",)),
          ("com.shop.news.", ("wamp.call", "wamp.subscribe"), ("managers",))]),
        # One permission for one role of what is left of it.
        ({"permissions": ["wamp.subscribe"], "uri": "com.shop.news.", "roles": ["managers"]},
         [("com.shop.api.", ("wamp.register",), ("managers",)),
          ("com.shop.news.", ("wamp.call",), ("managers",))]),
    ]
    for revoke, expected in steps:
        await call(root, "bondy.grant.revoke", SHOP, {**revoke, "match": "prefix"})
        grants = listed(await call(root, "bondy.realm.grants", SHOP))
        assert grants == expected, f"after revoking {revoke}: {grants}"
    alice = await admin.login(SHOP, "alice", ALICE_SECRET)
    await register_price(alice)


async def test_group_membership_changes_apply_to_live_sessions_at_once(admin):
    root = await admin.root()
    await build_shop(root)
    bob = await admin.login(SHOP, "bob", BOB_SECRET)
    await refused(bob.register(lambda: None, "com.shop.api.stock"), NOT_AUTHORIZED)

    await call(root, "bondy.user.add_group", SHOP, "bob", "managers")
    assert (await call(root, "bondy.user.get", SHOP, "bob"))["groups"] == ["staff", "managers"]
    # A new session of bob is a manager now...
    fresh = await admin.login(SHOP, "bob", BOB_SECRET)
    await asyncio.wait_for(fresh.register(lambda: 1, "com.shop.api.fresh"), RECV_TIMEOUT)
    # ... and so is the session he had already (the router says changes apply at once).
    try:
        await asyncio.wait_for(bob.register(lambda: 2, "com.shop.api.stock"), RECV_TIMEOUT)
    except ApplicationError as e:
        pytest.fail(f"bob's live session still lacks the grants of his new group: {e.error} "
                    f"{e.args!r} (a new session of his has them)")

    await call(root, "bondy.user.remove_groups", SHOP, "bob", ["managers"])
    assert (await call(root, "bondy.user.get", SHOP, "bob"))["groups"] == ["staff"]
    await refused(bob.register(lambda: 3, "com.shop.api.other"), NOT_AUTHORIZED)


async def test_group_and_user_membership_procedures(admin):
    root = await admin.root()
    await build_shop(root)
    await call(root, "bondy.group.add", SHOP, {"name": "night"})
    await call(root, "bondy.group.add", SHOP, {"name": "weekend"})

    await call(root, "bondy.user.add_groups", SHOP, "bob", ["night", "weekend"])
    assert (await call(root, "bondy.user.get", SHOP, "bob"))["groups"] == [
        "staff", "night", "weekend"]
    await call(root, "bondy.user.remove_group", SHOP, "bob", "night")
    assert (await call(root, "bondy.user.get", SHOP, "bob"))["groups"] == ["staff", "weekend"]

    await call(root, "bondy.group.add_group", SHOP, "night", "staff")
    await call(root, "bondy.group.add_groups", SHOP, "weekend", ["staff", "night"])
    assert (await call(root, "bondy.group.get", SHOP, "weekend"))["groups"] == ["staff", "night"]
    await call(root, "bondy.group.remove_groups", SHOP, "weekend", ["night"])
    await call(root, "bondy.group.remove_group", SHOP, "night", "staff")
    assert (await call(root, "bondy.group.get", SHOP, "night"))["groups"] == []
    await call(root, "bondy.group.update", SHOP, "night", {"groups": ["managers"]})
    assert (await call(root, "bondy.group.get", SHOP, "night"))["groups"] == ["managers"]

    # A group may not belong to itself through others.
    await refused(call(root, "bondy.group.update", SHOP, "staff", {"groups": ["night"]}),
                  INVALID_ARGUMENT)

    # Deleting a group takes it out of its members.
    await call(root, "bondy.group.delete", SHOP, "weekend")
    assert (await call(root, "bondy.user.get", SHOP, "bob"))["groups"] == ["staff"]
    await refused(call(root, "bondy.group.get", SHOP, "weekend"), NOT_FOUND)

    # bondy.user.update replaces groups and credentials; the new password works at once.
    await call(root, "bondy.user.update", SHOP, "bob",
               {"groups": ["managers"], "password": "bob-second"})
    b = await admin.login(SHOP, "bob", "bob-second", "wampcra")
    assert welcome(b) == (SHOP, "bob", "managers", "wampcra")

    # A deleted user cannot join any more.
    await call(root, "bondy.user.delete", SHOP, "bob")
    await refused(call(root, "bondy.user.get", SHOP, "bob"), NOT_FOUND)
    e = await join_fails(admin.login(SHOP, "bob", "bob-second"))
    assert e.reason == AUTHENTICATION_FAILED, e


async def test_change_password_replaces_the_old_one(admin):
    root = await admin.root()
    await build_shop(root)

    # With the old password given (Bondy's 4-argument form).
    assert await call(root, "bondy.user.change_password", SHOP, "alice", "alice-new",
                      ALICE_SECRET) is None
    for method in ("ticket", "wampcra"):
        e = await join_fails(admin.login(SHOP, "alice", ALICE_SECRET, method))
        assert e.reason == AUTHENTICATION_FAILED, e
        a = await admin.login(SHOP, "alice", "alice-new", method)
        assert welcome(a) == (SHOP, "alice", "managers", method)

    # Without it (3 arguments), and from the user's own realm without naming it.
    await call(root, "bondy.user.change_password", SHOP, "bob", "bob-new")
    await join_fails(admin.login(SHOP, "bob", BOB_SECRET))
    await admin.login(SHOP, "bob", "bob-new")
    boss = await admin.boss()
    await call(boss, "bondy.user.change_password", "clerk", "clerk-new")
    await join_fails(admin.login(ACME, "clerk", CLERK_SECRET))
    await admin.login(ACME, "clerk", "clerk-new")


async def test_bondy_change_password_with_a_wrong_old_password_is_bad_signature(admin):
    """Bondy's user.md documents ``wamp.error.bad_signature`` for a wrong old password (its
    error catalogue spells it ``bondy.error.bad_signature``); either way the password stays."""
    root = await admin.root()
    await build_shop(root)
    e = await refused(call(root, "bondy.user.change_password", SHOP, "alice", "alice-new",
                           "not-her-password"))
    await admin.login(SHOP, "alice", ALICE_SECRET)
    await join_fails(admin.login(SHOP, "alice", "alice-new"))
    assert e.error in ("wamp.error.bad_signature", "bondy.error.bad_signature"), (
        f"router answered {e.error} {e.args!r}")


async def test_deleting_a_realm_closes_its_sessions_with_close_realm(admin):
    root = await admin.root()
    watcher = await admin.root()
    events, _ = await subscribe_collector(watcher, "bondy.realm.deleted")
    await build_shop(root)
    alice = await admin.login(SHOP, "alice", ALICE_SECRET)

    # force=true is what Bondy needs to delete a realm that has users.
    assert await call(root, "bondy.realm.delete", SHOP, force=True) is None
    left = await asyncio.wait_for(asyncio.shield(alice.left), RECV_TIMEOUT)
    assert left.reason == "wamp.close.close_realm", (left.reason, left.message)

    (args, _, _), = await events.wait_for(1)
    assert list(args) == [SHOP]
    assert SHOP not in {r["uri"] for r in await call(root, "bondy.realm.list")}
    e = await join_fails(admin.login(SHOP, "alice", ALICE_SECRET))
    assert e.reason == NO_SUCH_REALM, e
    # The admin realm cannot delete itself.
    await refused(call(root, "bondy.realm.delete", ADMIN, force=True), NOT_AUTHORIZED)


async def test_bondy_refuses_to_delete_a_realm_with_users_unless_forced(admin):
    """Bondy's realm.md: bondy.realm.delete fails with ``bondy.error.active_users`` when the
    realm has users and ``force`` is not true."""
    root = await admin.root()
    await build_shop(root)
    try:
        await call(root, "bondy.realm.delete", SHOP)
    except ApplicationError as e:
        assert e.error == "bondy.error.active_users", (e.error, e.args)
    else:
        still_there = SHOP in {r["uri"] for r in await call(root, "bondy.realm.list")}
        pytest.fail("bondy.realm.delete without force deleted a realm that has users "
                    f"(alice, bob); realm still listed: {still_there}")
    assert (await call(root, "bondy.realm.get", SHOP))["uri"] == SHOP


# ------------------------------------------------------------------------------------------------
# Errors and who may call what
# ------------------------------------------------------------------------------------------------


async def test_the_error_uris(admin):
    root = await admin.root()
    await build_shop(root)

    await refused(call(root, "bondy.realm.create", {"uri": SHOP}), ALREADY_EXISTS)
    await refused(call(root, "bondy.user.add", SHOP, {"username": "bob"}), ALREADY_EXISTS)
    await refused(call(root, "bondy.group.add", SHOP, {"name": "staff"}), ALREADY_EXISTS)

    await refused(call(root, "bondy.user.get", SHOP, "zed"), NOT_FOUND)
    await refused(call(root, "bondy.user.update", SHOP, "zed", {"groups": []}), NOT_FOUND)
    await refused(call(root, "bondy.group.get", SHOP, "ghosts"), NOT_FOUND)
    await refused(call(root, "bondy.source.delete", SHOP, ["bob"], "10.0.0.0/8"), NOT_FOUND)

    e = await refused(call(root, "bondy.user.add", SHOP,
                           {"username": "zed", "groups": ["ghosts"]}), NO_SUCH_GROUPS)
    assert "ghosts" in e.args[0], e.args
    await refused(call(root, "bondy.user.add_group", SHOP, "bob", "ghosts"), NO_SUCH_GROUPS)
    await refused(call(root, "bondy.group.add", SHOP, {"name": "g", "groups": ["ghosts"]}),
                  NO_SUCH_GROUPS)
    # Nothing of a refused change is kept.
    await refused(call(root, "bondy.user.get", SHOP, "zed"), NOT_FOUND)
    assert (await call(root, "bondy.user.get", SHOP, "bob"))["groups"] == ["staff"]

    for procedure, args in [
        ("bondy.user.add", [SHOP, {"password": "no-name"}]),
        ("bondy.user.add", [SHOP, "not a dictionary"]),
        ("bondy.user.add", [SHOP, {"username": "all"}]),  # a reserved name
        ("bondy.user.add", [SHOP, {"username": "kim", "authorized_keys": ["xyz"]}]),
        ("bondy.group.add", [SHOP, {"groups": []}]),
        ("bondy.grant.create", [SHOP, {"permissions": ["wamp.fly"], "uri": "a",
                                       "roles": ["staff"]}]),
        ("bondy.grant.create", [SHOP, {"permissions": ["wamp.call"], "uri": "a", "match": "regex",
                                       "roles": ["staff"]}]),
        ("bondy.grant.create", [SHOP, {"permissions": ["wamp.call"], "roles": ["staff"]}]),
        ("bondy.source.add", [SHOP, {"usernames": ["bob"], "cidr": "nonsense",
                                     "authmethods": ["ticket"]}]),
        ("bondy.realm.create", [{"description": "no uri"}]),
        ("bondy.realm.update", [SHOP, {"disclose_caller": "yes"}]),
        ("bondy.realm.create", [{"uri": "com.x", "authmethods": ["carrier-pigeon"]}]),
    ]:
        await refused(call(root, procedure, *args), INVALID_ARGUMENT)

    # An admin call naming an unknown realm is bondy.error.not_found, as Bondy documents; joining
    # one is wamp.error.no_such_realm (above).
    for procedure, args in [
        ("bondy.user.add", [NOWHERE, {"username": "zed"}]),
        ("bondy.user.list", [NOWHERE]),
        ("bondy.grant.create", [NOWHERE, CALL_GRANT]),
        ("bondy.group.add", [NOWHERE, {"name": "g"}]),
    ]:
        e = await refused(call(root, procedure, *args), NOT_FOUND)
        assert NOWHERE in e.args[0], e.args


async def test_bondy_realm_get_of_an_unknown_realm_is_not_found(admin):
    """Bondy's realm.md: realm.get, realm.security.* and realm.grants answer an unknown realm
    with ``bondy.error.not_found``."""
    root = await admin.root()
    answers = {}
    for procedure in ("bondy.realm.get", "bondy.realm.security.status", "bondy.realm.grants"):
        e = await refused(call(root, procedure, NOWHERE))
        answers[procedure] = e.error
    assert answers == {p: NOT_FOUND for p in answers}, answers


async def test_bondy_update_returns_the_updated_user_and_group(admin):
    """Bondy's user.md and group.md: ``bondy.user.update(...) -> user()`` and
    ``bondy.group.update(...) -> group()``, as ``bondy.realm.update`` returns the realm."""
    root = await admin.root()
    await build_shop(root)
    realm = await call(root, "bondy.realm.update", SHOP, {"authmethods": ["wampcra"]})
    assert (realm["uri"], realm["authmethods"]) == (SHOP, ["wampcra"]), realm
    user = await call(root, "bondy.user.update", SHOP, "bob", {"groups": ["managers"]})
    group = await call(root, "bondy.group.update", SHOP, "staff", {"groups": []})
    assert (await call(root, "bondy.user.get", SHOP, "bob"))["groups"] == ["managers"]
    assert isinstance(user, dict) and (user.get("username"), user.get("groups")) == (
        "bob", ["managers"]), f"bondy.user.update returned {user!r}"
    assert isinstance(group, dict) and (group.get("name"), group.get("groups")) == (
        "staff", []), f"bondy.group.update returned {group!r}"


async def test_bondy_grant_create_with_a_list_of_resources(admin):
    """The form every example of Bondy's grant.md uses: ``resources: [{uri, match}, ...]``
    instead of one ``uri`` and ``match``."""
    root = await admin.root()
    await build_shop(root)
    try:
        await call(root, "bondy.grant.create", SHOP, {
            "permissions": ["wamp.call"],
            "resources": [{"uri": "com.shop.api.", "match": "prefix"},
                          {"uri": "com.shop.echo", "match": "exact"}],
            "roles": ["staff"],
        })
    except ApplicationError as e:
        pytest.fail(f"bondy.grant.create with resources refused: {e.error} {e.args!r}")
    grants = await call(root, "bondy.realm.grants", SHOP)
    covered = sorted((g["uri"], g["match"]) for g in grants if g["roles"] == ["staff"])
    assert covered == [("com.shop.api.", "prefix"), ("com.shop.echo", "exact")], grants


async def test_bondy_reserved_names_cannot_be_users_or_groups(admin):
    """Bondy's user.md reserves all, anonymous, any, from, on and to as usernames; group.md
    reserves all and anonymous as group names (a group called ``all`` would be confused with
    the role every session has)."""
    root = await admin.root()
    await build_shop(root)
    for name in ("all", "anonymous", "any", "from", "on", "to"):
        await refused(call(root, "bondy.user.add", SHOP, {"username": name, "password": "p"}),
                      INVALID_ARGUMENT)
    accepted = []
    for name in ("all", "anonymous"):
        try:
            await call(root, "bondy.group.add", SHOP, {"name": name})
            accepted.append(name)
        except ApplicationError:
            pass
    assert accepted == [], f"bondy.group.add accepted the reserved group names {accepted}"


async def test_a_realm_admin_manages_its_own_realm_only(admin):
    boss = await admin.boss()
    root = await admin.root()

    # Without a realm argument: the caller's realm.
    added = await call(boss, "bondy.user.add",
                       {"username": "newbie", "password": "newbie-1", "groups": ["clerks"]})
    assert added["username"] == "newbie"
    assert (await call(root, "bondy.user.get", ACME, "newbie"))["groups"] == ["clerks"]
    newbie = await admin.login(ACME, "newbie", "newbie-1")
    assert welcome(newbie) == (ACME, "newbie", "clerks", "ticket")
    # Naming its own realm is fine too.
    assert (await call(boss, "bondy.user.get", ACME, "newbie"))["username"] == "newbie"
    assert (await call(boss, "bondy.user.get", "newbie"))["username"] == "newbie"

    # Another realm is out of reach, whether it exists or not.
    for procedure, args in [
        ("bondy.user.add", [OTHER, {"username": "mole", "password": "x"}]),
        ("bondy.user.list", [OTHER]),
        ("bondy.user.get", [OTHER, "someone"]),
        ("bondy.realm.get", [OTHER]),
        ("bondy.grant.create", [OTHER, {"permissions": ["all"], "uri": "", "match": "prefix",
                                        "roles": ["all"]}]),
        ("bondy.user.change_password", [OTHER, "someone", "stolen", SOMEONE_SECRET]),
        ("bondy.user.add", [ADMIN, {"username": "mole", "password": "x", "groups": ["operators"]}]),
        ("bondy.user.list", [NOWHERE]),
    ]:
        await refused(call(boss, procedure, *args), NOT_AUTHORIZED)
    await refused(call(root, "bondy.user.get", OTHER, "mole"), NOT_FOUND)
    await refused(call(root, "bondy.user.get", ADMIN, "mole"), NOT_FOUND)
    await admin.login(OTHER, "someone", SOMEONE_SECRET)

    # Creating and deleting realms is for the admin realm only; its realm list is its own.
    await refused(call(boss, "bondy.realm.create", {"uri": "com.acme.two"}), NOT_AUTHORIZED)
    await refused(call(boss, "bondy.realm.delete", ACME, force=True), NOT_AUTHORIZED)
    assert [r["uri"] for r in await call(boss, "bondy.realm.list")] == [ACME]

    # A session of a secure realm without a grant on the procedure is refused like any call.
    clerk = await admin.login(ACME, "clerk", CLERK_SECRET)
    e = await refused(clerk.call("bondy.user.list"), NOT_AUTHORIZED)
    assert e.args[0] == denied("wamp.call", "bondy.user.list")
    auditor = await admin.login(ADMIN, "auditor", AUDITOR_SECRET, "wampcra")
    assert {r["uri"] for r in await call(auditor, "bondy.realm.list")} >= {ADMIN, ACME}
    e = await refused(auditor.call("bondy.user.add", ACME, {"username": "x"}), NOT_AUTHORIZED)
    assert e.args[0] == denied("wamp.call", "bondy.user.add")


async def test_an_open_realm_refuses_the_admin_api(admin):
    anon = await admin.autobahn(realm=OPEN)
    for procedure, args in [
        ("bondy.user.list", []),
        ("bondy.user.add", [{"username": "x", "password": "y"}]),
        ("bondy.realm.list", []),
        ("bondy.realm.create", [{"uri": "com.sneaky"}]),
        ("bondy.grant.create", [ACME, {"permissions": ["all"], "uri": "", "match": "prefix",
                                       "roles": ["all"]}]),
    ]:
        e = await refused(anon.call(procedure, *args), NOT_AUTHORIZED)
        assert "needs security" in e.args[0], (procedure, e.args)
    root = await admin.root()
    assert not any(r["uri"] == "com.sneaky" for r in await call(root, "bondy.realm.list"))


# ------------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------------


async def test_events_reach_the_admin_realm_and_the_managed_realm(admin):
    root = await admin.root()
    watcher = await admin.root()
    boss = await admin.boss()
    in_admin, _ = await subscribe_collector(watcher, "bondy.", match="prefix")
    in_acme, _ = await subscribe_collector(boss, "bondy.", match="prefix")

    await build_shop(root)
    await call(root, "bondy.user.update", SHOP, "bob", {"groups": ["managers"]})
    await call(root, "bondy.user.add_group", SHOP, "bob", "staff")
    await call(root, "bondy.group.remove_group", SHOP, "managers", "staff")
    await call(root, "bondy.group.add_group", SHOP, "managers", "staff")
    await call(root, "bondy.user.change_password", SHOP, "bob", "bob-new")
    await call(root, "bondy.group.update", SHOP, "staff", {"groups": []})
    await call(root, "bondy.realm.update", SHOP, {"authmethods": ["ticket"]})
    await call(root, "bondy.source.add", SHOP,
               {"usernames": ["all"], "cidr": "127.0.0.0/8", "authmethods": ["ticket"]})
    await call(root, "bondy.source.delete", SHOP, ["all"], "127.0.0.0/8")
    await call(root, "bondy.user.delete", SHOP, "bob")
    await call(root, "bondy.group.delete", SHOP, "staff")
    await call(root, "bondy.realm.delete", SHOP, force=True)
    # Last, a change in acme: the marker that boss received nothing of com.shop before it.
    await call(root, "bondy.user.add", ACME, {"username": "temp", "password": "t"})

    expected = [
        ("bondy.realm.created", [SHOP]),
        ("bondy.group.added", [SHOP, "staff"]),
        ("bondy.group.added", [SHOP, "managers"]),
        ("bondy.user.added", [SHOP, "alice"]),
        ("bondy.user.added", [SHOP, "bob"]),
        ("bondy.user.updated", [SHOP, "bob"]),
        ("bondy.user.updated", [SHOP, "bob"]),
        ("bondy.group.updated", [SHOP, "managers"]),
        ("bondy.group.updated", [SHOP, "managers"]),
        ("bondy.user.credentials_changed", [SHOP, "bob"]),
        ("bondy.group.updated", [SHOP, "staff"]),
        ("bondy.realm.updated", [SHOP]),
        ("bondy.source.added", [SHOP]),
        ("bondy.source.deleted", [SHOP]),
        ("bondy.user.deleted", [SHOP, "bob"]),
        ("bondy.group.deleted", [SHOP, "staff"]),
        ("bondy.realm.deleted", [SHOP]),
        ("bondy.user.added", [ACME, "temp"]),
    ]

    def seen(events):
        # Source events carry the source (or its cidr) after the realm: compare the realm only.
        return [(d.topic, list(args[:1] if d.topic.startswith("bondy.source.") else args))
                for args, _, d in events.items]

    await in_admin.wait_for(len(expected))
    got = seen(in_admin)
    assert got == expected, f"{len(got)} events in the admin realm (got / expected):\n" + "\n".join(
        f"{'  ' if g == x else '! '}{g} / {x}" for g, x in zip(got, expected))
    await in_acme.wait_for(1)
    assert seen(in_acme) == [("bondy.user.added", [ACME, "temp"])]


# ------------------------------------------------------------------------------------------------
# Sources and trust
# ------------------------------------------------------------------------------------------------


async def test_sources_added_through_the_api_decide_who_may_log_in_from_where(admin):
    root = await admin.root()
    await build_shop(root)

    far = await call(root, "bondy.source.add", SHOP,
                     {"usernames": ["alice"], "cidr": "10.0.0.0/8", "authmethods": ["ticket"]})
    assert (far["usernames"], far["cidr"], far["authmethods"]) == (
        ["alice"], "10.0.0.0/8", ["ticket"])
    # With a source only for 10.0.0.0/8, nobody may log in from 127.0.0.1.
    e = await join_fails(admin.login(SHOP, "alice", ALICE_SECRET))
    assert e.reason == NO_MATCHING_AUTH_METHOD, e
    assert e.message.endswith("; not allowed from address 127.0.0.1: [ticket]"), e.message
    await join_fails(admin.login(SHOP, "bob", BOB_SECRET))

    await call(root, "bondy.source.add", SHOP,
               {"usernames": ["alice"], "cidr": "127.0.0.0/8", "authmethods": ["ticket"]})
    sources = await call(root, "bondy.source.list", SHOP)
    assert sorted(s["cidr"] for s in sources) == ["10.0.0.0/8", "127.0.0.0/8"]
    await admin.login(SHOP, "alice", ALICE_SECRET)
    # Only ticket, and only for alice.
    e = await join_fails(admin.login(SHOP, "alice", ALICE_SECRET, "wampcra"))
    assert e.message.endswith("; not allowed from address 127.0.0.1: [wampcra]"), e.message
    await join_fails(admin.login(SHOP, "bob", BOB_SECRET))

    await call(root, "bondy.source.delete", SHOP, ["alice"], "127.0.0.0/8")
    await join_fails(admin.login(SHOP, "alice", ALICE_SECRET))
    await call(root, "bondy.source.delete", SHOP, ["alice"], "10.0.0.0/8")
    assert await call(root, "bondy.source.list", SHOP) == []
    # No sources at all: every accepted method from anywhere again.
    await admin.login(SHOP, "bob", BOB_SECRET, "wampcra")


async def test_source_get_and_match_answer_what_applies_to_a_user_and_an_address(admin):
    """``bondy.source.get(realm, username, cidr)`` and ``bondy.source.match(realm[, username[,
    ip]])`` (Bondy's source.md), and match agrees with who may log in from 127.0.0.1."""
    root = await admin.root()
    await build_shop(root)
    everyone = {"usernames": ["all"], "cidr": "127.0.0.0/8", "authmethods": ["ticket"]}
    office = {"usernames": ["alice"], "cidr": "10.1.0.0/16", "authmethods": ["wampcra"]}
    for source in (everyone, office):
        await call(root, "bondy.source.add", SHOP, source)

    assert await call(root, "bondy.source.get", SHOP, "alice", "10.1.2.3/16") == office
    assert await call(root, "bondy.source.get", SHOP, ["all"], "127.0.0.0/8") == everyone
    await refused(call(root, "bondy.source.get", SHOP, "bob", "10.1.0.0/16"), NOT_FOUND)

    assert await call(root, "bondy.source.match", SHOP) == [everyone]
    assert await call(root, "bondy.source.match", SHOP, "alice") == [everyone, office]
    assert await call(root, "bondy.source.match", SHOP, "alice", "10.1.9.9") == [office]
    assert await call(root, "bondy.source.match", SHOP, "bob", "10.1.9.9") == []
    [local] = await call(root, "bondy.source.match", SHOP, "bob", "127.0.0.1")
    assert local["authmethods"] == ["ticket"]
    bob = await admin.login(SHOP, "bob", BOB_SECRET, "ticket")
    assert welcome(bob)[3] == "ticket"
    await join_fails(admin.login(SHOP, "bob", BOB_SECRET, "wampcra"))
    await refused(call(root, "bondy.source.match", SHOP, "bob", "not-an-ip"), INVALID_ARGUMENT)


async def test_trust_enabled_through_the_api_admits_a_known_user_through_a_source(admin):
    root = await admin.root()
    await call(root, "bondy.realm.create", {"uri": "com.kiosk", "authmethods": ["trust"]})
    await call(root, "bondy.user.add", "com.kiosk", {"username": "terminal"})
    # trust always needs a source.
    e = await join_fails(join_autobahn_auth(admin.router, "com.kiosk", ["trust"], "terminal"))
    assert e.reason == NO_MATCHING_AUTH_METHOD, e
    await call(root, "bondy.source.add", "com.kiosk",
               {"usernames": ["all"], "cidr": "127.0.0.0/8", "authmethods": ["trust"]})
    session = await join_autobahn_auth(admin.router, "com.kiosk", ["trust"], "terminal")
    admin._autobahn.append(session)
    _, authid, _, authmethod = welcome(session)
    assert (authid, authmethod) == ("terminal", "trust")
    # An unknown authid is not vouched for.
    e = await join_fails(join_autobahn_auth(admin.router, "com.kiosk", ["trust"], "stranger"))
    assert e.reason == NO_MATCHING_AUTH_METHOD, e


# ------------------------------------------------------------------------------------------------
# Offline CLI and durability
# ------------------------------------------------------------------------------------------------


def cli(router, *args: str) -> subprocess.CompletedProcess:
    """``junction <args> --data-dir <the router's> --config <its file>``."""
    return subprocess.run(
        [str(router.binary), *args, "--data-dir", str(router.data_dir),
         "--config", str(router.workdir / "junction.toml")],
        capture_output=True, text=True, timeout=STARTUP_TIMEOUT, cwd=router.workdir,
    )


def cli_json(router, *args: str):
    done = cli(router, *args)
    assert done.returncode == 0, f"junction {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return json.loads(done.stdout)


def stop(router, sig: int = signal.SIGTERM) -> int:
    router.send_signal(sig)
    code = router.wait_exit(STARTUP_TIMEOUT)
    assert code is not None, f"junction did not exit on signal {sig}"
    return code


async def test_the_offline_cli_changes_what_the_router_serves_after_a_restart(admin, router):
    # While the router runs, the store is locked: the CLI refuses instead of racing it.
    busy = cli(router, "user", "list", ACME)
    assert busy.returncode != 0 and busy.stderr.strip(), (busy.returncode, busy.stdout)
    await admin.close()
    assert stop(router) == 0

    realm = cli_json(router, "realm", "create", "com.cli", "--authmethod", "ticket",
                     "--authmethod", "wampcra", "--description", "made offline")
    assert (realm["uri"], realm["description"]) == ("com.cli", "made offline")
    assert cli_json(router, "group", "add", "com.cli", "staff")["name"] == "staff"
    dave = cli_json(router, "user", "add", "com.cli", "dave", "--password", "dave-1",
                    "--group", "staff")
    assert (dave["username"], dave["groups"], dave["has_password"]) == ("dave", ["staff"], True)
    cli_json(router, "grant", "add", "com.cli", "--permission", "wamp.call",
             "--uri", "wamp.session.", "--match", "prefix", "--role", "staff")
    cli_json(router, "user", "passwd", "com.cli", "dave", "dave-2")
    # A user for a realm of the configuration file too.
    cli_json(router, "user", "add", ACME, "erin", "--password", "erin-1", "--group", "clerks")
    assert [u["username"] for u in cli_json(router, "user", "list", "com.cli")] == ["dave"]
    assert "com.cli" in {r["uri"] for r in cli_json(router, "realm", "list")}
    grants = cli_json(router, "grant", "list", "com.cli")
    assert [(g["uri"], g["roles"]) for g in grants] == [("wamp.session.", ["staff"])]
    # Sources: dave may still use both methods from loopback; nothing from 10/8 is left.
    source = cli_json(router, "source", "add", "com.cli", "--user", "all", "--cidr",
                      "127.0.0.0/8", "--authmethod", "ticket", "--authmethod", "wampcra")
    assert source == {"usernames": ["all"], "cidr": "127.0.0.0/8",
                      "authmethods": ["ticket", "wampcra"]}, source
    cli_json(router, "source", "add", "com.cli", "--user", "dave", "--cidr", "10.0.0.0/8",
             "--authmethod", "ticket")
    assert cli_json(router, "source", "delete", "com.cli", "--user", "dave",
                    "--cidr", "10.0.0.0/8") is None
    assert [s["cidr"] for s in cli_json(router, "source", "list", "com.cli")] == ["127.0.0.0/8"]
    gone = cli(router, "source", "delete", "com.cli", "--user", "dave", "--cidr", "10.0.0.0/8")
    assert gone.returncode != 0 and NOT_FOUND in gone.stderr, gone.stderr
    # A mistake is reported, with the admin API's error URI.
    bad = cli(router, "user", "add", "com.cli", "zed", "--group", "ghosts")
    assert bad.returncode != 0 and NO_SUCH_GROUPS in bad.stderr, bad.stderr

    router.start()
    pool = AdminClients(router)
    try:
        for method in ("ticket", "wampcra"):
            d = await pool.login("com.cli", "dave", "dave-2", method)
            assert welcome(d) == ("com.cli", "dave", "staff", method)
        assert await call(d, "wamp.session.count") >= 1
        await join_fails(pool.login("com.cli", "dave", "dave-1"))
        erin = await pool.login(ACME, "erin", "erin-1")
        assert welcome(erin) == (ACME, "erin", "clerks", "ticket")
        root = await pool.root()
        assert (await call(root, "bondy.realm.get", "com.cli"))["description"] == "made offline"
    finally:
        await pool.close()


async def test_a_disabled_user_cannot_log_in_and_its_live_session_is_closed(admin):
    """``bondy.user.disable``/``enable``/``is_enabled`` (Bondy's user.md): a disabled user fails
    to log in exactly like a wrong password, with ticket and wampcra alike, its live session is
    closed with ``wamp.close.killed``, and enabling it lets it in again."""
    root = await admin.root()
    await build_shop(root)
    alice = await admin.login(SHOP, "alice", ALICE_SECRET, "wampcra")
    assert await call(root, "bondy.user.is_enabled", SHOP, "alice") is True

    assert await call(root, "bondy.user.disable", SHOP, "alice") is None
    left = await asyncio.wait_for(asyncio.shield(alice.left), RECV_TIMEOUT)
    assert (left.reason, left.message) == ("wamp.close.killed", 'user "alice" was disabled'), left
    assert await call(root, "bondy.user.is_enabled", SHOP, "alice") is False
    assert (await call(root, "bondy.user.get", SHOP, "alice"))["enabled"] is False
    for method in ("ticket", "wampcra"):
        disabled = await join_fails(admin.login(SHOP, "alice", ALICE_SECRET, method))
        wrong = await join_fails(admin.login(SHOP, "alice", "not-" + ALICE_SECRET, method))
        assert (disabled.reason, disabled.message) == (wrong.reason, wrong.message), method
        assert disabled.reason == AUTHENTICATION_FAILED, disabled

    await call(root, "bondy.user.enable", SHOP, "alice")
    again = await admin.login(SHOP, "alice", ALICE_SECRET, "wampcra")
    assert welcome(again) == (SHOP, "alice", "managers", "wampcra")
    ghost = await refused(call(root, "bondy.user.is_enabled", SHOP, "ghost"))
    assert ghost.error == "wamp.error.no_such_principal", ghost


async def test_the_offline_cli_disables_and_enables_users_durably(admin, router):
    await admin.close()
    assert stop(router) == 0
    cli_json(router, "user", "add", ACME, "kim", "--password", "kim-1", "--disabled")
    cli_json(router, "user", "add", ACME, "lou", "--password", "lou-1")
    cli_json(router, "user", "disable", ACME, "lou")
    router.start()
    pool = AdminClients(router)
    try:
        for authid in ("kim", "lou"):
            failed = await join_fails(pool.login(ACME, authid, f"{authid}-1"))
            assert failed.reason == AUTHENTICATION_FAILED, failed
        root = await pool.root()
        assert await call(root, "bondy.user.is_enabled", ACME, "kim") is False
        await pool.close()
        assert stop(router) == 0
        assert cli_json(router, "user", "enable", ACME, "kim") is None
        router.start()
        pool = AdminClients(router)
        assert welcome(await pool.login(ACME, "kim", "kim-1"))[1] == "kim"
    finally:
        await pool.close()


async def test_admin_changes_survive_kill_9(admin, router):
    root = await admin.root()
    await call(root, "bondy.realm.create", {"uri": "com.durable", "authmethods": ["wampcra"]})
    await call(root, "bondy.group.add", "com.durable", {"name": "staff"})
    await call(root, "bondy.user.add", "com.durable",
               {"username": "fred", "password": "fred-1", "groups": ["staff"]})
    await call(root, "bondy.grant.create", "com.durable", {
        "permissions": ["wamp.call"], "uri": "wamp.session.count", "roles": ["staff"]})
    await call(root, "bondy.user.add", ACME, {"username": "gina", "password": "gina-1"})
    await call(root, "bondy.user.add", ACME, {"username": "hank", "password": "hank-1"})
    await call(root, "bondy.user.delete", ACME, "hank")
    # The last change, answered just before the kill.
    await call(root, "bondy.user.change_password", "com.durable", "fred", "fred-2")

    assert stop(router, signal.SIGKILL) == -signal.SIGKILL
    await admin.close()
    router.start()
    pool = AdminClients(router)
    try:
        fred = await pool.login("com.durable", "fred", "fred-2", "wampcra")
        assert welcome(fred) == ("com.durable", "fred", "staff", "wampcra")
        assert await call(fred, "wamp.session.count") >= 1
        await join_fails(pool.login("com.durable", "fred", "fred-1", "wampcra"))
        await pool.login(ACME, "gina", "gina-1")
        root = await pool.root()
        users = {u["username"] for u in await call(root, "bondy.user.list", ACME)}
        assert users == {"boss", "clerk", "gina"}, users
    finally:
        await pool.close()


async def test_the_offline_cli_without_a_config_file_opens_no_realm(admin, router):
    """``junction user add`` with only ``--data-dir`` must change that user and nothing else. The
    built-in default configuration opens ``realm1`` to anonymous clients; it must not end up in
    the store of a router whose configuration file has no such realm."""
    await admin.close()
    assert stop(router) == 0
    done = subprocess.run(
        [str(router.binary), "user", "add", ACME, "ivy", "--password", "ivy-1",
         "--group", "clerks", "--data-dir", str(router.data_dir)],
        capture_output=True, text=True, timeout=STARTUP_TIMEOUT, cwd=router.workdir)
    assert done.returncode == 0, done.stderr
    router.start()
    pool = AdminClients(router)
    try:
        await pool.login(ACME, "ivy", "ivy-1")
        root = await pool.root()
        realms = sorted(r["uri"] for r in await call(root, "bondy.realm.list"))
        assert realms == sorted([ADMIN, ACME, OTHER, OPEN]), (
            f"after `junction user add` without --config the router serves {realms}")
    finally:
        await pool.close()


async def test_realm_update_changes_settings_for_new_and_live_sessions(admin):
    """``bondy.realm.update`` changes the description, anonymous access, security, caller
    disclosure and call timeouts at once: Autobahn sessions that join afterwards are admitted
    anonymously, and a callee that registered before sees who calls."""
    root = await admin.root()
    await build_shop(root)
    await join_fails(admin.autobahn(realm=SHOP))
    realm = await call(root, "bondy.realm.update", SHOP, {
        "description": "the shop, open", "authmethods": ["anonymous", "ticket"],
        "security_enabled": False, "disclose_caller": True, "max_call_timeout_ms": 60000})
    assert (realm["description"], realm["authmethods"], realm["disclose_caller"],
            realm["max_call_timeout_ms"]) == ("the shop, open", ["anonymous", "ticket"], True,
                                              60000), realm
    assert (await call(root, "bondy.realm.get", SHOP))["description"] == "the shop, open"

    callee = await admin.autobahn(realm=SHOP)
    seen = []

    def whoami(details=None):
        seen.append(details.caller)
        return "ok"

    from autobahn.wamp.types import RegisterOptions
    await callee.register(whoami, "com.shop.whoami", options=RegisterOptions(details_arg="details"))
    caller = await admin.autobahn(realm=SHOP)
    assert await call(caller, "com.shop.whoami") == "ok"
    assert seen == [caller._session_id], seen


async def test_the_cli_with_url_works_on_a_running_router(admin, router):
    """``junction --url ws://… --admin-authid root`` runs the same commands through the admin API
    of the running router: the changes apply at once, a wrong password or a missing grant is
    refused with the WAMP error, and the store stays the router's."""
    def online(*args: str, password: str = ROOT_SECRET) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(router.binary), "--url", router.ws_url, "--admin-authid", "root", *args,
             "--config", str(router.workdir / "junction.toml")],
            capture_output=True, text=True, timeout=STARTUP_TIMEOUT, cwd=router.workdir,
            env={**os.environ, "JUNCTION_ADMIN_PASSWORD": password})

    def online_json(*args: str):
        done = online(*args)
        assert done.returncode == 0, f"junction {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout)

    realm = online_json("realm", "create", "com.online", "--authmethod", "ticket")
    assert realm["uri"] == "com.online", realm
    online_json("group", "add", "com.online", "staff")
    online_json("user", "add", "com.online", "olga", "--password", "olga-1", "--group", "staff")
    online_json("grant", "add", "com.online", "--permission", "wamp.call",
                "--uri", "wamp.session.count", "--role", "staff")
    # Live: olga logs in at once and may call what the grant gives.
    olga = await admin.login("com.online", "olga", "olga-1")
    assert welcome(olga) == ("com.online", "olga", "staff", "ticket")
    assert await call(olga, "wamp.session.count") >= 1

    wrong = online("realm", "list", password="not-root")
    assert wrong.returncode != 0 and AUTHENTICATION_FAILED in wrong.stderr, wrong.stderr
    missing = online("user", "add", "com.online", "zed", "--group", "ghosts")
    assert missing.returncode != 0 and NO_SUCH_GROUPS in missing.stderr, missing.stderr
    # The offline command names the way out while the router holds the store.
    busy = cli(router, "user", "list", "com.online")
    assert busy.returncode != 0 and "--url" in busy.stderr, busy.stderr


async def test_revoking_a_grant_withdraws_live_subscriptions(admin):
    """A subscription made under a grant is withdrawn when the grant goes. A peer that announced
    ``subscription_revocation`` gets ``UNSUBSCRIBED(0)`` with the reason; the events stop, while a
    subscription another grant still allows keeps working. (Autobahn|Python 26.10.2 announces
    the feature but raises ProtocolError on UNSUBSCRIBED(0), so a raw WebSocket peer is used.)"""
    root = await admin.root()
    await build_shop(root)
    news = {"permissions": ["wamp.subscribe"], "uri": "com.shop.news.", "match": "prefix",
            "roles": ["staff"]}
    marker = {"permissions": ["wamp.subscribe"], "uri": "com.shop.marker", "roles": ["staff"]}
    publish = {"permissions": ["wamp.publish"], "uri": "com.shop.", "match": "prefix",
               "roles": ["managers"]}
    for grant in (news, marker, publish):
        await call(root, "bondy.grant.create", SHOP, grant)
    bob = await admin.raw()
    challenge = await bob.hello(SHOP, {"authid": "bob", "authmethods": ["ticket"], "roles": {
        "subscriber": {"features": {"subscription_revocation": True}}}})
    assert challenge[0] == 4, challenge
    await bob.send([5, BOB_SECRET, {}])
    assert (await bob.recv())[0] == 2
    news_id = await bob.subscribe("com.shop.news.", {"match": "prefix"})
    marker_id = await bob.subscribe("com.shop.marker")
    alice = await admin.login(SHOP, "alice", ALICE_SECRET)

    await call(root, "bondy.grant.revoke", SHOP, news)
    assert await bob.recv() == [
        35, 0, {"subscription": news_id, "reason": "wamp.error.not_authorized"}]
    options = PublishOptions(acknowledge=True)
    await alice.publish("com.shop.news.today", 1, options=options)
    await alice.publish("com.shop.marker", 2, options=options)
    # One publisher's events arrive in order: the marker comes, the news did not.
    event = await bob.recv()
    assert (event[0], event[1], event[4]) == (36, marker_id, [2]), event
