'use strict';
// Joining and leaving with Autobahn|JS.

const assert = require('node:assert/strict');

const h = require('./lib/harness');

h.suite('Autobahn|JS sessions', ({ it, connect, within, rejected }) => {
  for (const serializer of h.SERIALIZERS) {
    it(`join over ${serializer} is welcomed as anonymous with broker and dealer roles`, async () => {
      const client = await connect({ serializer });

      assert.equal(client.details.realm, h.REALM);
      assert.equal(client.details.authrole, 'anonymous');
      assert.equal(client.details.authmethod, 'anonymous');
      assert.deepEqual(Object.keys(client.details.roles).sort(), ['broker', 'dealer']);
      assert.ok(Number.isInteger(client.session.id) && client.session.id > 0);
    });
  }

  it('join to an unknown realm is refused with no_such_realm', async () => {
    const error = await rejected(
      connect({ serializer: 'json', realm: 'com.example.no_such_realm' }),
      'joining an unknown realm',
    );

    assert.match(error.message, /wamp\.error\.no_such_realm/);
  });

  it('leaving is answered with goodbye_and_out', async () => {
    const client = await connect({ serializer: 'msgpack' });

    client.connection.close();
    const { details } = await within(client.closed, 'closing');

    assert.equal(details.reason, 'wamp.close.goodbye_and_out');
  });
});
