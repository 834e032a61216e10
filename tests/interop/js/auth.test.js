'use strict';
// Realm security with Autobahn|JS: ticket, salted and unsalted WAMP-CRA authentication over
// plain WebSocket and RawSocket and over WebSocket with TLS (wss://), cryptosign with TLS
// channel binding (tls-exporter on TLS 1.3, tls-unique on TLS 1.2), refused credentials, and
// grants (see docs/security.md; spec: advanced/authentication_*.md).
//
// The suite starts its own router with CONFIG: realm `secure` admits no anonymous sessions and
// accepts ticket and wampcra; joe is a user, carl an admin (admins are users too), una a user
// who opted in to unsalted WAMP-CRA. The router also has a TLS listener with a self-signed
// certificate made for the run; wss:// clients trust it through an `https.Agent` given to
// Autobahn|JS's WebSocket transport (`agent`, passed on to `ws`). Realm `bound` accepts only
// cryptosign, for kim's Ed25519 key.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const https = require('node:https');
const { describe, before, after, test } = require('node:test');

const h = require('./lib/harness');

const { autobahn } = h;
const REALM = 'secure';
const JOE_SECRET = 'joe-js-secret';
const CARL_SECRET = 'carl-js-secret';
const UNA_SECRET = 'una-js-secret';
const KIM_KEY = autobahn.nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(11));

const CONFIG = `
[[realms]]
name = "${REALM}"
anonymous = false

[realms.security]
authmethods = ["ticket", "wampcra"]

[[realms.security.users]]
authid = "joe"
password = "${JOE_SECRET}"
groups = ["user"]

[[realms.security.users]]
authid = "carl"
password = "${CARL_SECRET}"
groups = ["admin"]

[[realms.security.users]]
authid = "una"
password = "${UNA_SECRET}"
wampcra_unsalted = true
groups = ["user"]

[[realms.security.groups]]
name = "user"

[[realms.security.groups]]
name = "admin"
groups = ["user"]

[[realms.security.grants]]
permissions = ["wamp.call", "wamp.subscribe"]
uri = "com.app."
match = "prefix"
roles = ["user"]

[[realms.security.grants]]
permissions = ["wamp.register", "wamp.publish"]
uri = "com.app."
match = "prefix"
roles = ["admin"]

# So that a session can read its own transport (tls or not).
[[realms.security.grants]]
permissions = ["wamp.call"]
uri = "wamp.session.get"
roles = ["user"]

[[realms]]
name = "bound"
anonymous = false

[realms.security]
authmethods = ["cryptosign"]

[[realms.security.users]]
authid = "kim"
authorized_keys = ["${Buffer.from(KIM_KEY.publicKey).toString('hex')}"]
`;

/** onchallenge for ticket: the secret itself. Records the challenges it sees in `seen`. */
function ticket(secret, seen = []) {
  return (session, method, extra) => {
    seen.push({ method, extra });
    return secret;
  };
}

/** onchallenge for salted WAMP-CRA, with Autobahn|JS's own helpers. */
function wampcra(secret, seen = []) {
  return (session, method, extra) => {
    seen.push({ method, extra });
    const key = autobahn.auth_cra.derive_key(secret, extra.salt, extra.iterations, extra.keylen);
    return autobahn.auth_cra.sign(key, extra.challenge);
  };
}

/** onchallenge for unsalted WAMP-CRA (no salt in the challenge): sign() keyed with the secret. */
function unsaltedWampcra(secret, seen = []) {
  return (session, method, extra) => {
    seen.push({ method, extra });
    return autobahn.auth_cra.sign(secret, extra.challenge);
  };
}

/**
 * onchallenge for cryptosign with Autobahn|JS's signer. With `channelId` (a function giving
 * the 32-octet TLS channel id) it signs the challenge XOR the channel id, as the spec says
 * (Autobahn|JS has no channel binding of its own).
 */
function cryptosign(key, seen = [], channelId = null) {
  return (session, method, extra) => {
    seen.push({ method, extra });
    let { challenge } = extra;
    if (channelId) {
      const id = channelId();
      challenge = Buffer.from(challenge, 'hex').map((b, i) => b ^ id[i]).toString('hex');
    }
    return autobahn.auth_cryptosign.sign_challenge(key, { challenge });
  };
}

/**
 * An agent that trusts the router's certificate and remembers the TLS socket it opens, for its
 * channel ids as OpenSSL (in Node) sees them: `exporter()`, the RFC 9266 tls-exporter, and
 * `unique()`, the RFC 5929 tls-unique (the first Finished message: the client's own on a full
 * handshake) as Autobahn|Python turns it into 32 octets, its SHA-256. `options`: more TLS
 * options (`maxVersion: 'TLSv1.2'` for tls-unique).
 */
function bindingAgent(router, options = {}) {
  const agent = router.tlsAgent(options);
  const create = agent.createConnection.bind(agent);
  agent.createConnection = (...args) => {
    agent.socket = create(...args);
    return agent.socket;
  };
  agent.exporter = () => agent.socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding',
    Buffer.alloc(0));
  // On a resumed session the server's Finished comes first.
  agent.unique = () => crypto.createHash('sha256').update(agent.socket.isSessionReused()
    ? agent.socket.getPeerFinished() : agent.socket.getFinished()).digest();
  return agent;
}

const TLS12 = { maxVersion: 'TLSv1.2' };

function serializerOptions(name) {
  const serializers = {
    json: ['wamp.2.json', autobahn.serializer.JSONSerializer],
    msgpack: ['wamp.2.msgpack', autobahn.serializer.MsgpackSerializer],
    cbor: ['wamp.2.cbor', autobahn.serializer.CBORSerializer],
  };
  const [protocol, Serializer] = serializers[name];
  return { protocols: [protocol], serializers: [new Serializer()] };
}

/**
 * Open a connection that authenticates. Resolves to {outcome: 'joined', client} once WELCOME
 * came, or to {outcome: 'closed', reason, details} if the connection closed first (ABORT:
 * details.reason and details.message carry the ABORT's reason and message). Bounded.
 * `transport` 'wss' is WebSocket over TLS; `agent` replaces the agent that trusts the router's
 * certificate.
 */
function open(router, { authid, authmethods, onchallenge, serializer = 'json',
  transport = 'websocket', realm = REALM, agent = undefined, authextra = undefined }) {
  const options = {
    realm,
    authid,
    authmethods,
    authextra,
    onchallenge,
    max_retries: 0,
    retry_if_unreachable: false,
    ...serializerOptions(serializer),
  };
  if (transport === 'websocket') {
    options.url = router.wsUrl;
  } else if (transport === 'wss') {
    // Autobahn|JS hands `agent` to `ws` only from a transport's own options.
    options.transports = [{ type: 'websocket', url: router.wssUrl,
      agent: agent || router.tlsAgent() }];
  } else {
    options.transports = [{ type: 'rawsocket', host: '127.0.0.1', port: router.port }];
  }
  const connection = new autobahn.Connection(options);
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
  return h.withTimeout(outcome, h.RECV_TIMEOUT,
    `authenticating ${authid} over ${transport}/${serializer}`);
}

describe('Autobahn|JS realm security', () => {
  let router;
  const clients = [];

  /** Joins and returns the client; fails the test if the router refused. */
  async function join(options) {
    const result = await open(router, options);
    assert.equal(result.outcome, 'joined',
      `expected WELCOME, the connection closed: ${JSON.stringify(result)}`);
    clients.push(result.client);
    return result.client;
  }

  /** The close details of a join the router must refuse; fails the test if it joined. */
  async function refusal(options) {
    const result = await open(router, options);
    if (result.outcome === 'joined') {
      clients.push(result.client);
      assert.fail(`joined with ${JSON.stringify(result.client.details)}, expected ABORT`);
    }
    return result.details;
  }

  const it = (name, fn) => test(name, h.withRouterLog(() => router, fn));
  const within = (promise, what) => h.withTimeout(promise, h.RECV_TIMEOUT, what);
  /** What `promise` rejects with (bounded); fails the test if it resolves. */
  const rejection = (promise, what) => within(Promise.resolve(promise).then(
    (value) => assert.fail(`${what} succeeded with ${JSON.stringify(value)}`),
    (e) => e,
  ), what);

  before(async () => {
    router = await h.startRouter({ config: CONFIG, tls: true });
  });

  after(async () => {
    for (const client of clients) await h.disconnect(client);
    const alive = router.isRunning();
    const log = router.logTail();
    await router.stop();
    assert.ok(alive, `junction exited during the tests:\n${log}`);
  });

  for (const [transport, serializer] of [['websocket', 'json'], ['websocket', 'msgpack'],
    ['websocket', 'cbor'], ['rawsocket', 'json']]) {
    it(`ticket authenticates joe over ${transport}/${serializer}`, async () => {
      const seen = [];
      const { details } = await join({
        authid: 'joe', authmethods: ['ticket'], onchallenge: ticket(JOE_SECRET, seen),
        transport, serializer,
      });

      assert.deepEqual(seen, [{ method: 'ticket', extra: {} }]);
      assert.deepEqual(
        [details.realm, details.authid, details.authrole, details.authmethod, details.authprovider],
        [REALM, 'joe', 'user', 'ticket', 'junction'],
      );
    });
  }

  for (const serializer of ['json', 'cbor']) {
    it(`salted wampcra authenticates carl over websocket/${serializer}`, async () => {
      const seen = [];
      const { session, details } = await join({
        authid: 'carl', authmethods: ['wampcra'], onchallenge: wampcra(CARL_SECRET, seen),
        serializer,
      });

      assert.equal(seen.length, 1);
      const [{ method, extra }] = seen;
      assert.equal(method, 'wampcra');
      assert.ok(extra.salt && extra.iterations > 0 && extra.keylen === 32,
        `a salted challenge: ${JSON.stringify(extra)}`);
      const signed = JSON.parse(extra.challenge);
      assert.equal(signed.authid, 'carl');
      assert.equal(signed.session, session.id, 'the challenge names the session WELCOME gives');
      assert.deepEqual(
        [details.authid, details.authrole, details.authmethod, details.authprovider],
        ['carl', 'admin', 'wampcra', 'junction'],
      );
    });
  }

  it('unsalted wampcra authenticates una, signing with the secret itself', async () => {
    const seen = [];
    // No salt in the challenge: Autobahn|JS's sign() keyed with the plain secret.
    const { details } = await join({ authid: 'una', authmethods: ['wampcra'],
      onchallenge: unsaltedWampcra(UNA_SECRET, seen) });

    assert.deepEqual(Object.keys(seen[0].extra), ['challenge'], JSON.stringify(seen));
    assert.deepEqual([details.authid, details.authrole, details.authmethod],
      ['una', 'user', 'wampcra']);
    const wrong = await refusal({ authid: 'una', authmethods: ['wampcra'],
      onchallenge: unsaltedWampcra('not-it') });
    assert.equal(wrong.reason, 'wamp.error.authentication_failed', JSON.stringify(wrong));
  });

  // Over wss://: each method with the kind of challenge it must get (ticket: nothing; salted
  // WAMP-CRA: salt, iterations and keylen; unsalted: the challenge alone), on a session whose
  // transport the router reports as TLS; and the same users with a wrong secret are refused.
  const overTls = [
    { authid: 'joe', authmethods: ['ticket'], answer: ticket, secret: JOE_SECRET,
      serializer: 'json', authrole: 'user', extraKeys: [] },
    { authid: 'carl', authmethods: ['wampcra'], answer: wampcra, secret: CARL_SECRET,
      serializer: 'msgpack', authrole: 'admin',
      extraKeys: ['challenge', 'iterations', 'keylen', 'salt'] },
    { authid: 'una', authmethods: ['wampcra'], answer: unsaltedWampcra, secret: UNA_SECRET,
      serializer: 'cbor', authrole: 'user', extraKeys: ['challenge'] },
  ];
  for (const { authid, authmethods, answer, secret, serializer, authrole, extraKeys } of overTls) {
    const [method] = authmethods;
    it(`${method} authenticates ${authid} over wss:// (${serializer}), and a wrong secret is ` +
      'refused there', async () => {
      const seen = [];
      const { session, details } = await join({ authid, authmethods, transport: 'wss',
        serializer, onchallenge: answer(secret, seen) });

      assert.deepEqual(seen.map(({ extra }) => Object.keys(extra).sort()), [extraKeys],
        JSON.stringify(seen));
      assert.deepEqual([details.realm, details.authid, details.authrole, details.authmethod],
        [REALM, authid, authrole, method]);
      const own = await within(session.call('wamp.session.get', [session.id]),
        'wamp.session.get');
      assert.deepEqual([own.transport.type, own.transport.tls], ['websocket', true],
        JSON.stringify(own.transport));

      const wrong = await refusal({ authid, authmethods, transport: 'wss', serializer,
        onchallenge: answer('not-it') });
      assert.equal(wrong.reason, 'wamp.error.authentication_failed', JSON.stringify(wrong));
    });
  }

  it('plain WebSocket sessions report no TLS; a wss:// client must trust the certificate',
    async () => {
      const { session } = await join({ authid: 'joe', authmethods: ['ticket'],
        onchallenge: ticket(JOE_SECRET) });
      const own = await within(session.call('wamp.session.get', [session.id]),
        'wamp.session.get');
      assert.equal(own.transport.tls, false, JSON.stringify(own.transport));

      // An agent with Node's default trust store does not know the self-signed certificate.
      const untrusting = await open(router, { authid: 'joe', authmethods: ['ticket'],
        onchallenge: ticket(JOE_SECRET), transport: 'wss', agent: new https.Agent() });
      assert.equal(untrusting.outcome, 'closed', 'joined without trusting the certificate');
      assert.equal(untrusting.reason, 'unreachable', JSON.stringify(untrusting));
    });

  it('a wrong ticket, a wrong wampcra secret and an unknown user are refused alike', async () => {
    const attempts = [
      { authid: 'joe', authmethods: ['ticket'], onchallenge: ticket('not-it') },
      { authid: 'carl', authmethods: ['wampcra'], onchallenge: wampcra('not-it') },
      { authid: 'nobody', authmethods: ['ticket'], onchallenge: ticket('not-it'),
        serializer: 'msgpack' },
      { authid: 'nobody', authmethods: ['wampcra'], onchallenge: wampcra('not-it'),
        transport: 'rawsocket' },
    ];
    const messages = [];
    for (const attempt of attempts) {
      const details = await refusal(attempt);
      assert.equal(details.reason, 'wamp.error.authentication_failed', JSON.stringify(details));
      assert.ok(details.message, `ABORT has a message: ${JSON.stringify(details)}`);
      messages.push(details.message.replace(attempt.authid, '<authid>'));
    }
    // The unknown user's refusal reads like the known user's (same method, authid aside).
    assert.equal(messages[2], messages[0]);
    assert.equal(messages[3], messages[1]);
  });

  it('joining without a method the realm accepts is refused, naming the accepted ones', async () => {
    const details = await refusal({ authid: 'joe', authmethods: ['cryptosign'],
      onchallenge: () => { throw new Error('no challenge expected'); } });
    assert.equal(details.reason, 'wamp.error.no_matching_auth_method', JSON.stringify(details));
    assert.match(details.message, /ticket/);
    assert.match(details.message, /wampcra/);
  });

  it('a call without a grant rejects with wamp.error.not_authorized', async () => {
    const carl = await join({ authid: 'carl', authmethods: ['wampcra'],
      onchallenge: wampcra(CARL_SECRET) });
    const joe = await join({ authid: 'joe', authmethods: ['ticket'],
      onchallenge: ticket(JOE_SECRET), serializer: 'cbor' });
    await within(carl.session.register('com.app.add', ([a, b]) => a + b), 'register com.app.add');

    // Granted to users: joe may call.
    assert.equal(await within(joe.session.call('com.app.add', [2, 3]), 'call com.app.add'), 5);

    // Not granted: calls outside com.app., meta procedures, registering.
    for (const procedure of ['com.other.add', 'wamp.session.count']) {
      const error = await rejection(joe.session.call(procedure, [1]), `call ${procedure}`);
      assert.equal(error.error, 'wamp.error.not_authorized', JSON.stringify(error));
      assert.deepEqual(error.args,
        [`permission wamp.call on "${procedure}" is not granted to this session`]);
    }
    const error = await rejection(joe.session.register('com.app.mine', () => 1),
      'register com.app.mine');
    assert.equal(error.error, 'wamp.error.not_authorized', JSON.stringify(error));
    assert.deepEqual(error.args,
      ['permission wamp.register on "com.app.mine" is not granted to this session']);
  });

  describe('cryptosign with TLS channel binding (tls-exporter RFC 9266, tls-unique RFC 5929)', () => {
    const pubkey = Buffer.from(KIM_KEY.publicKey).toString('hex');
    const kim = (channelBinding, extra) => ({ realm: 'bound', authid: 'kim',
      authmethods: ['cryptosign'], authextra: { pubkey, channel_binding: channelBinding },
      ...extra });

    it('a signature bound to the connection\'s exporter joins over wss://', async () => {
      const seen = [];
      const agent = bindingAgent(router);
      const { session, details } = await join(kim('tls-exporter',
        { transport: 'wss', agent, onchallenge: cryptosign(KIM_KEY, seen, agent.exporter) }));
      assert.equal(seen.length, 1);
      assert.equal(seen[0].extra.channel_binding, 'tls-exporter', JSON.stringify(seen));
      assert.equal(agent.socket.getProtocol(), 'TLSv1.3');
      assert.deepEqual([details.authid, details.authmethod], ['kim', 'cryptosign']);
      assert.ok(session.id > 0);
    });

    it('an unbound signature, or one bound to another connection, is refused', async () => {
      const unbound = await refusal(kim('tls-exporter',
        { transport: 'wss', agent: bindingAgent(router), onchallenge: cryptosign(KIM_KEY) }));
      assert.equal(unbound.reason, 'wamp.error.authentication_failed', JSON.stringify(unbound));

      // The exporter of another TLS connection to the same router (a relayed signature).
      const other = bindingAgent(router);
      const first = await join(kim('tls-exporter',
        { transport: 'wss', agent: other, onchallenge: cryptosign(KIM_KEY, [], other.exporter) }));
      assert.equal(first.details.authid, 'kim');
      const relayed = await refusal(kim('tls-exporter', { transport: 'wss',
        agent: bindingAgent(router), onchallenge: cryptosign(KIM_KEY, [], other.exporter) }));
      assert.equal(relayed.reason, 'wamp.error.authentication_failed', JSON.stringify(relayed));
    });

    it('a signature bound to the connection\'s tls-unique joins over wss:// on TLS 1.2', async () => {
      const seen = [];
      const agent = bindingAgent(router, TLS12);
      const { details } = await join(kim('tls-unique',
        { transport: 'wss', agent, onchallenge: cryptosign(KIM_KEY, seen, agent.unique) }));
      assert.equal(agent.socket.getProtocol(), 'TLSv1.2');
      assert.equal(seen[0].extra.channel_binding, 'tls-unique', JSON.stringify(seen));
      assert.deepEqual([details.authid, details.authmethod], ['kim', 'cryptosign']);
    });

    it('tls-unique binds the signature on a resumed TLS 1.2 session too', async () => {
      // One agent: Node's agent offers the session of its first connection to the second.
      const agent = bindingAgent(router, TLS12);
      for (const resumed of [false, true]) {
        const { session, details } = await join(kim('tls-unique',
          { transport: 'wss', agent, onchallenge: cryptosign(KIM_KEY, [], agent.unique) }));
        assert.equal(agent.socket.isSessionReused(), resumed);
        assert.equal(details.authmethod, 'cryptosign');
        session.leave();
      }
    });

    it('a tls-unique signature unbound or bound to another connection is refused', async () => {
      const unbound = await refusal(kim('tls-unique',
        { transport: 'wss', agent: bindingAgent(router, TLS12), onchallenge: cryptosign(KIM_KEY) }));
      assert.equal(unbound.reason, 'wamp.error.authentication_failed', JSON.stringify(unbound));

      const other = bindingAgent(router, TLS12);
      await join(kim('tls-unique',
        { transport: 'wss', agent: other, onchallenge: cryptosign(KIM_KEY, [], other.unique) }));
      const relayed = await refusal(kim('tls-unique', { transport: 'wss',
        agent: bindingAgent(router, TLS12), onchallenge: cryptosign(KIM_KEY, [], other.unique) }));
      assert.equal(relayed.reason, 'wamp.error.authentication_failed', JSON.stringify(relayed));
    });

    it('without binding kim joins over wss:// and ws://; the challenge binds nothing', async () => {
      for (const transport of ['wss', 'websocket']) {
        const seen = [];
        const { details } = await join(kim(null,
          { transport, onchallenge: cryptosign(KIM_KEY, seen) }));
        assert.equal(details.authid, 'kim');
        assert.equal(seen[0].extra.channel_binding, null, JSON.stringify(seen));
      }
    });

    it('tls-exporter without TLS 1.3 and tls-unique without TLS 1.2 are refused with what to do', async () => {
      const noChallenge = () => { throw new Error('no challenge expected'); };
      const plain = await refusal(kim('tls-exporter', { onchallenge: noChallenge }));
      assert.equal(plain.reason, 'wamp.error.authentication_failed', JSON.stringify(plain));
      assert.match(plain.message, /needs a TLS 1\.3 connection/);
      const unique = await refusal(kim('tls-unique',
        { transport: 'wss', onchallenge: noChallenge }));
      assert.equal(unique.reason, 'wamp.error.authentication_failed', JSON.stringify(unique));
      assert.match(unique.message, /tls-unique needs a TLS 1\.2 connection.*tls-exporter over TLS 1\.3/);
      const exporter = await refusal(kim('tls-exporter',
        { transport: 'wss', agent: bindingAgent(router, TLS12), onchallenge: noChallenge }));
      assert.match(exporter.message, /needs a TLS 1\.3 connection.*tls-unique over TLS 1\.2/);
    });
  });
});
