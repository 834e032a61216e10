'use strict';
// Joining and leaving with Autobahn|JS.

const { describe, before, after, test } = require('node:test');
const assert = require('node:assert/strict');

const h = require('./lib/harness');

describe('Autobahn|JS sessions', () => {
  let router;
  const clients = [];
  const it = (name, body) => test(name, h.withRouterLog(() => router, body));

  before(async () => {
    router = await h.startRouter();
  });

  after(async () => {
    for (const client of clients) await h.disconnect(client);
    const alive = router.isRunning();
    const exit = router.exit;
    const log = router.logTail();
    await router.stop();
    assert.ok(alive, `junction exited during the tests ${JSON.stringify(exit)}:\n${log}`);
  });

  for (const serializer of h.SERIALIZERS) {
    it(`join over ${serializer} is welcomed as anonymous with broker and dealer roles`, async () => {
      const client = await h.connect(router, { serializer });
      clients.push(client);

      assert.equal(client.details.realm, h.REALM);
      assert.equal(client.details.authrole, 'anonymous');
      assert.equal(client.details.authmethod, 'anonymous');
      assert.deepEqual(Object.keys(client.details.roles).sort(), ['broker', 'dealer']);
      assert.ok(Number.isInteger(client.session.id) && client.session.id > 0);
    });
  }

  it('join to an unknown realm is refused with no_such_realm', async () => {
    const error = await h.connect(router, { serializer: 'json', realm: 'com.example.no_such_realm' })
      .then(
        (client) => { clients.push(client); assert.fail('joined an unknown realm'); },
        (e) => e,
      );

    assert.match(error.message, /wamp\.error\.no_such_realm/);
  });

  it('leaving is answered with goodbye_and_out', async () => {
    const client = await h.connect(router, { serializer: 'msgpack' });

    client.connection.close();
    const { details } = await h.withTimeout(client.closed, h.RECV_TIMEOUT, 'closing');

    assert.equal(details.reason, 'wamp.close.goodbye_and_out');
  });
});
