"""Prototype realms and ``allow_connections`` end to end with Autobahn|Python (see
docs/security.md, "Prototype realms"; Bondy's reference: bondy/concepts/realms.md §Prototype
Inheritance, bondy/reference/parts/realm_data.md).

The router starts with test_admin's configuration (admin realm ``junction.admin`` whose ``root``
may call every ``bondy.*`` procedure). Each test builds, through the admin API as root:

* ``com.proto``, a prototype realm: ticket and wampcra, group ``staff`` which may call under
  ``com.proto.api.``; no users (a prototype cannot have any);
* ``com.tenant``, a realm with ``prototype_uri = com.proto`` that sets nothing itself, and its
  own user ``ann`` in the prototype's group ``staff``.

Ann authenticates with methods only the prototype lists, and what she may do comes only from
the prototype's grant.
"""

from __future__ import annotations

import pytest

from test_admin import (  # noqa: F401 (admin is a fixture)
    ADMIN,
    CONFIG,
    NO_SUCH_REALM,
    NOT_AUTHORIZED,
    AdminClients,
    admin,
    call,
    cli_json,
    denied,
    join_fails,
    refused,
    stop,
    welcome,
)

pytestmark = pytest.mark.router_config(CONFIG)

PROTO = "com.proto"
TENANT = "com.tenant"
ANN_SECRET = "ann-secret-1"
INVALID_DATA = "bondy.error.invalid_data"
NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"
STAFF_CALL = {"permissions": ["wamp.call"], "uri": "com.proto.api.", "match": "prefix",
              "roles": ["staff"]}


async def build(root) -> None:
    proto = await call(root, "bondy.realm.create", {
        "uri": PROTO, "is_prototype": True, "authmethods": ["ticket", "wampcra"],
        "description": "what tenants share",
    })
    assert proto["is_prototype"] is True
    await call(root, "bondy.group.add", PROTO, {"name": "staff"})
    await call(root, "bondy.grant.create", PROTO, STAFF_CALL)
    tenant = await call(root, "bondy.realm.create", {"uri": TENANT, "prototype_uri": PROTO})
    assert tenant["prototype_uri"] == PROTO
    await call(root, "bondy.user.add", TENANT,
               {"username": "ann", "password": ANN_SECRET, "groups": ["staff"]})


async def calls(session, procedure: str):
    """Calls ``procedure``; returns the error URI (no callee is registered, so an allowed
    call fails with no_such_procedure and a refused one with not_authorized)."""
    e = await refused(session.call(procedure))
    return e.error, e.args[0] if e.args else None


@pytest.mark.parametrize("method", ["wampcra", "ticket"])
async def test_a_realm_uses_its_prototypes_authmethods_groups_and_grants(admin, method):
    root = await admin.root()
    await build(root)
    got = await call(root, "bondy.realm.get", TENANT)
    assert (got["prototype_uri"], got["authmethods"], got["security_enabled"]) == (
        PROTO, ["ticket", "wampcra"], True)
    assert (got["is_prototype"], got["allow_connections"]) == (False, True)
    ann = await admin.login(TENANT, "ann", ANN_SECRET, method)
    assert welcome(ann) == (TENANT, "ann", "staff", method)
    assert (await calls(ann, "com.proto.api.price"))[0] == NO_SUCH_PROCEDURE
    assert await calls(ann, "com.other.price") == (
        NOT_AUTHORIZED, denied("wamp.call", "com.other.price"))


async def test_changing_the_prototypes_grants_affects_live_sessions_at_once(admin):
    root = await admin.root()
    await build(root)
    ann = await admin.login(TENANT, "ann", ANN_SECRET, "wampcra")
    assert (await calls(ann, "com.proto.api.price"))[0] == NO_SUCH_PROCEDURE
    await call(root, "bondy.grant.revoke", PROTO, STAFF_CALL)
    assert (await calls(ann, "com.proto.api.price"))[0] == NOT_AUTHORIZED
    await call(root, "bondy.grant.create", PROTO, {**STAFF_CALL, "uri": "com.proto.admin."})
    assert (await calls(ann, "com.proto.admin.reset"))[0] == NO_SUCH_PROCEDURE
    assert (await calls(ann, "com.proto.api.price"))[0] == NOT_AUTHORIZED
    # Still joined: the changes reached the live session, not a new one.
    assert ann.is_attached()


async def test_a_prototype_refuses_sessions_users_and_deletion_while_used(admin):
    root = await admin.root()
    await build(root)
    e = await join_fails(admin.login(PROTO, "ann", ANN_SECRET))
    assert e.reason == NO_SUCH_REALM
    assert "is a prototype realm" in e.message, e.message
    await refused(call(root, "bondy.user.add", PROTO, {"username": "eve", "password": "x"}),
                  INVALID_DATA)
    e = await refused(call(root, "bondy.realm.delete", PROTO), INVALID_DATA)
    assert TENANT in e.args[0]
    # Bondy's rules on prototype_uri: an existing prototype, one level, fixed once created.
    await refused(call(root, "bondy.realm.create", {"uri": "com.x", "prototype_uri": TENANT}),
                  INVALID_DATA)
    await refused(call(root, "bondy.realm.create", {"uri": "com.y", "prototype_uri": "com.no"}),
                  INVALID_DATA)
    await refused(call(root, "bondy.realm.update", TENANT, {"prototype_uri": ADMIN}),
                  INVALID_DATA)


async def test_allow_connections_false_refuses_new_sessions_and_keeps_joined_ones(admin):
    root = await admin.root()
    await build(root)
    ann = await admin.login(TENANT, "ann", ANN_SECRET, "ticket")
    closed = await call(root, "bondy.realm.update", TENANT, {"allow_connections": False})
    assert closed["allow_connections"] is False
    e = await join_fails(admin.login(TENANT, "ann", ANN_SECRET, "wampcra"))
    assert e.reason == NOT_AUTHORIZED
    assert "allow_connections" in e.message, e.message
    # The joined session is still served.
    assert (await calls(ann, "com.proto.api.price"))[0] == NO_SUCH_PROCEDURE
    # The tenant set allow_connections itself, so the prototype's value no longer applies.
    await call(root, "bondy.realm.update", PROTO, {"allow_connections": True})
    await join_fails(admin.login(TENANT, "ann", ANN_SECRET))
    reopened = await call(root, "bondy.realm.update", TENANT, {"allow_connections": True})
    assert reopened["allow_connections"] is True
    assert welcome(await admin.login(TENANT, "ann", ANN_SECRET)) == (
        TENANT, "ann", "staff", "ticket")


async def test_a_realm_inherits_allow_connections_from_its_prototype(admin):
    root = await admin.root()
    await build(root)
    await call(root, "bondy.realm.update", PROTO, {"allow_connections": False})
    assert (await call(root, "bondy.realm.get", TENANT))["allow_connections"] is False
    e = await join_fails(admin.login(TENANT, "ann", ANN_SECRET))
    assert e.reason == NOT_AUTHORIZED


async def test_inheritance_survives_a_restart_and_the_offline_cli_builds_it(admin, router):
    root = await admin.root()
    await build(root)
    await admin.close()
    assert stop(router) == 0
    # Offline: another tenant of the same prototype, closed to new sessions.
    made = cli_json(router, "realm", "create", "com.cli.tenant", "--prototype", PROTO,
                    "--allow-connections", "false")
    assert (made["prototype_uri"], made["authmethods"], made["allow_connections"]) == (
        PROTO, ["ticket", "wampcra"], False)
    cli_json(router, "user", "add", "com.cli.tenant", "bea", "--password", "bea-1",
             "--group", "staff")
    router.start()
    pool = AdminClients(router)
    try:
        ann = await pool.login(TENANT, "ann", ANN_SECRET, "wampcra")
        assert (await calls(ann, "com.proto.api.price"))[0] == NO_SUCH_PROCEDURE
        assert (await calls(ann, "com.other"))[0] == NOT_AUTHORIZED
        e = await join_fails(pool.login("com.cli.tenant", "bea", "bea-1"))
        assert e.reason == NOT_AUTHORIZED
        root = await pool.root()
        await call(root, "bondy.realm.update", "com.cli.tenant", {"allow_connections": True})
        bea = await pool.login("com.cli.tenant", "bea", "bea-1")
        assert (await calls(bea, "com.proto.api.price"))[0] == NO_SUCH_PROCEDURE
        e = await join_fails(pool.login(PROTO, "bea", "bea-1"))
        assert e.reason == NO_SUCH_REALM
    finally:
        await pool.close()
