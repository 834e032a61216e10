'use strict';
// The admin API (Bondy's bondy.* procedures) from Autobahn|JS: an administrator of the admin
// realm, logged in with ticket, creates a realm, a group, a user and a grant, and the new user
// logs in with salted WAMP-CRA at once and uses the grant (see docs/security.md).
//
// The suite starts its own router with CONFIG: the admin realm `junction.admin` (the default
// `admin_realm`) with the user `root`, whose group may call and subscribe under `bondy.`.

const assert = require('node:assert/strict');
const { describe, before, after, test } = require('node:test');

const h = require('./lib/harness');

const { autobahn } = h;
const ADMIN = 'junction.admin';
const REALM = 'com.example.js';
const ROOT_SECRET = 'root-js-secret';
const JESS_SECRET = 'jess-js-secret';

const CONFIG = `
[[realms]]
name = "${ADMIN}"
anonymous = false

[realms.security]
authmethods = ["ticket"]

[[realms.security.users]]
authid = "root"
password = "${ROOT_SECRET}"
groups = ["operators"]

[[realms.security.groups]]
name = "operators"

[[realms.security.grants]]
permissions = ["wamp.call", "wamp.subscribe"]
uri = "bondy."
match = "prefix"
roles = ["operators"]
`;

function ticket(secret) {
  return (session, method) => {
    assert.equal(method, 'ticket');
    return secret;
  };
}

function wampcra(secret) {
  return (session, method, extra) => {
    assert.equal(method, 'wampcra');
    const key = autobahn.auth_cra.derive_key(secret, extra.salt, extra.iterations, extra.keylen);
    return autobahn.auth_cra.sign(key, extra.challenge);
  };
}

const SERIALIZERS = {
  json: ['wamp.2.json', autobahn.serializer.JSONSerializer],
  msgpack: ['wamp.2.msgpack', autobahn.serializer.MsgpackSerializer],
  cbor: ['wamp.2.cbor', autobahn.serializer.CBORSerializer],
};

/**
 * Opens a connection that authenticates. Resolves to {outcome: 'joined', client} on WELCOME,
 * or {outcome: 'closed', reason, details} if it closed first (ABORT). Bounded.
 */
function open(router, { realm, authid, authmethods, onchallenge, serializer = 'json' }) {
  const [protocol, Serializer] = SERIALIZERS[serializer];
  const connection = new autobahn.Connection({
    url: router.wsUrl,
    realm,
    authid,
    authmethods,
    onchallenge,
    max_retries: 0,
    retry_if_unreachable: false,
    protocols: [protocol],
    serializers: [new Serializer()],
  });
  let resolveClosed;
  const closed = new Promise((resolve) => { resolveClosed = resolve; });
  const outcome = new Promise((resolve) => {
    connection.onopen = (session, details) => resolve({
      outcome: 'joined', client: { connection, session, details, closed },
    });
    connection.onclose = (reason, details) => {
      resolve({ outcome: 'closed', reason, details });
      resolveClosed({ reason, details });
      return true; // never reconnect
    };
  });
  connection.open();
  return h.withTimeout(outcome, h.RECV_TIMEOUT, `authenticating ${authid} on ${realm}`);
}

describe('Autobahn|JS and the admin API', () => {
  let router;
  const clients = [];

  async function join(options) {
    const result = await open(router, options);
    assert.equal(result.outcome, 'joined',
      `expected WELCOME, the connection closed: ${JSON.stringify(result)}`);
    clients.push(result.client);
    return result.client;
  }

  async function refusal(options) {
    const result = await open(router, options);
    if (result.outcome === 'joined') {
      clients.push(result.client);
      assert.fail(`joined with ${JSON.stringify(result.client.details)}, expected ABORT`);
    }
    return result.details;
  }

  const root = () => join({ realm: ADMIN, authid: 'root', authmethods: ['ticket'],
    onchallenge: ticket(ROOT_SECRET) });
  const jess = (serializer = 'json') => join({ realm: REALM, authid: 'jess',
    authmethods: ['wampcra'], onchallenge: wampcra(JESS_SECRET), serializer });

  const it = (name, fn) => test(name, h.withRouterLog(() => router, fn));
  const within = (promise, what) => h.withTimeout(promise, h.RECV_TIMEOUT, what);
  const rejection = (promise, what) => within(Promise.resolve(promise).then(
    (value) => assert.fail(`${what} succeeded with ${JSON.stringify(value)}`),
    (e) => e,
  ), what);

  before(async () => {
    router = await h.startRouter({ config: CONFIG });
  });

  after(async () => {
    for (const client of clients) await h.disconnect(client);
    const alive = router.isRunning();
    const log = router.logTail();
    await router.stop();
    assert.ok(alive, `junction exited during the tests:\n${log}`);
  });

  it('an admin adds a user and a grant, and the user logs in with wampcra at once', async () => {
    const admin = await root();
    assert.deepEqual([admin.details.realm, admin.details.authid, admin.details.authmethod],
      [ADMIN, 'root', 'ticket']);
    const call = (procedure, args, kwargs) => within(admin.session.call(procedure, args, kwargs),
      `call ${procedure}`);

    const realm = await call('bondy.realm.create', [{ uri: REALM, authmethods: ['wampcra'] }]);
    assert.equal(realm.uri, REALM);
    await call('bondy.group.add', [REALM, { name: 'staff' }]);

    // Before bondy.user.add, jess is nobody.
    const before = await refusal({ realm: REALM, authid: 'jess', authmethods: ['wampcra'],
      onchallenge: wampcra(JESS_SECRET) });
    assert.equal(before.reason, 'wamp.error.authentication_failed', JSON.stringify(before));

    const user = await call('bondy.user.add',
      [REALM, { username: 'jess', password: JESS_SECRET, groups: ['staff'] }]);
    assert.deepEqual([user.username, user.groups, user.has_password], ['jess', ['staff'], true]);
    assert.ok(!JSON.stringify(user).includes(JESS_SECRET), 'the result shows the password');

    // Logged in at once, before any grant; nothing is allowed yet.
    const early = await jess('msgpack');
    assert.deepEqual(
      [early.details.realm, early.details.authid, early.details.authrole, early.details.authmethod],
      [REALM, 'jess', 'staff', 'wampcra'],
    );
    const denied = await rejection(early.session.register('com.example.js.echo', (args) => args),
      'register before the grant');
    assert.equal(denied.error, 'wamp.error.not_authorized', JSON.stringify(denied));

    const granted = await call('bondy.grant.create', [REALM, {
      permissions: ['wamp.register', 'wamp.call'], uri: 'com.example.js.', match: 'prefix',
      roles: ['staff'],
    }]);
    assert.equal(granted ?? null, null);

    // A new wampcra session, and the one from before the grant, may both use it now.
    const later = await jess('cbor');
    await within(later.session.register('com.example.js.echo', (args) => args[0]),
      'register com.example.js.echo');
    assert.equal(await within(early.session.call('com.example.js.echo', ['hi']), 'call echo'),
      'hi');

    const grants = await call('bondy.user.grants', [REALM, 'jess']);
    assert.deepEqual(grants.map((g) => [g.uri, g.match, g.roles]),
      [['com.example.js.', 'prefix', ['staff']]]);
  });

  it('admin API errors reject with Bondy\'s error URIs', async () => {
    const admin = await root();
    const call = (procedure, args) => admin.session.call(procedure, args);
    const realm = 'com.example.errors';
    await within(call('bondy.realm.create', [{ uri: realm, authmethods: ['ticket'] }]), 'create');
    await within(call('bondy.user.add', [realm, { username: 'kim', password: 'kim-1' }]), 'add');
    const cases = [
      ['bondy.realm.create', [{ uri: realm }], 'bondy.error.already_exists'],
      ['bondy.user.add', [realm, { username: 'kim', password: 'again' }],
        'bondy.error.already_exists'],
      ['bondy.user.add', [realm, { username: 'kai', groups: ['ghosts'] }],
        'bondy.error.no_such_groups'],
      ['bondy.user.get', [realm, 'nobody'], 'bondy.error.not_found'],
      ['bondy.grant.create', ['com.nowhere', { permissions: ['wamp.call'], uri: 'x',
        roles: ['all'] }], 'bondy.error.not_found'],
      ['bondy.grant.create', [realm, { permissions: ['wamp.fly'], uri: 'x', roles: ['all'] }],
        'wamp.error.invalid_argument'],
    ];
    for (const [procedure, args, uri] of cases) {
      const e = await rejection(call(procedure, args), procedure);
      assert.ok(e instanceof autobahn.Error, `an autobahn.Error: ${JSON.stringify(e)}`);
      assert.equal(e.error, uri, `${procedure} ${JSON.stringify(args)}: ${JSON.stringify(e)}`);
      assert.equal(typeof e.args[0], 'string');
    }
  });
});
