'use strict';
// Publish/subscribe between Autobahn|JS sessions through Junction.
//
// A test that checks that an event is NOT delivered never waits for a fixed time: it publishes
// a marker event afterwards from the same publisher and waits for that one, since the router
// delivers one publisher's events to a subscriber in order.

const assert = require('node:assert/strict');

const h = require('./lib/harness');

h.suite('Autobahn|JS publish and subscribe', ({ it, open, within, collect }) => {
  for (const serializer of h.SERIALIZERS) {
    it(`event over ${serializer} reaches the subscriber with args and kwargs`, async () => {
      const subscriber = await open({ serializer });
      const publisher = await open({ serializer });
      const topic = `com.example.js.news.${serializer}`;
      const { events, subscription } = await collect(subscriber, topic);

      const publication = await within(
        publisher.publish(topic, [1, 'two', { nested: [true, null] }], { k: 'v' },
          { acknowledge: true }),
        'publish');
      const [event] = await events.waitFor(1);

      assert.deepEqual(event.args, [1, 'two', { nested: [true, null] }]);
      assert.deepEqual(event.kwargs, { k: 'v' });
      assert.equal(event.details.publication, publication.id);
      assert.equal(typeof subscription.id, 'number');
    });
  }

  it('json publisher reaches cbor and msgpack subscribers with the same event', async () => {
    const publisher = await open({ serializer: 'json' });
    const cborSide = await collect(await open({ serializer: 'cbor' }), 'com.example.js.mixed');
    const msgpackSide = await collect(await open({ serializer: 'msgpack' }), 'com.example.js.mixed');

    await within(publisher.publish('com.example.js.mixed',
      ['grüße ✓', 2 ** 40, -1.5], { flag: false, list: [] }, { acknowledge: true }), 'publish');

    for (const [name, side] of [['cbor', cborSide], ['msgpack', msgpackSide]]) {
      const [event] = await side.events.waitFor(1);
      assert.deepEqual(event.args, ['grüße ✓', 2 ** 40, -1.5], name);
      assert.deepEqual(event.kwargs, { flag: false, list: [] }, name);
    }
    // One topic, one subscription: both subscribers share its id.
    assert.equal(cborSide.subscription.id, msgpackSide.subscription.id);
  });

  it('cbor publisher reaches json subscriber', async () => {
    const subscriber = await collect(await open({ serializer: 'json' }), 'com.example.js.to_json');
    const publisher = await open({ serializer: 'cbor' });

    await within(publisher.publish('com.example.js.to_json', ['from cbor', 42], {},
      { acknowledge: true }), 'publish');
    const [event] = await subscriber.events.waitFor(1);

    assert.deepEqual(event.args, ['from cbor', 42]);
  });

  it('publisher is excluded from its own event by default, included with exclude_me false',
    async () => {
      const publisher = await open({ serializer: 'msgpack' });
      const other = await open({ serializer: 'json' });
      const own = await collect(publisher, 'com.example.js.chat');
      const theirs = await collect(other, 'com.example.js.chat');

      await within(publisher.publish('com.example.js.chat', ['default'], {},
        { acknowledge: true }), 'publish');
      await theirs.events.waitFor(1);
      await within(publisher.publish('com.example.js.chat', ['marker'], {},
        { acknowledge: true, exclude_me: false }), 'publish');
      await own.events.waitFor(1);

      assert.deepEqual(own.events.items.map((e) => e.args), [['marker']]);
      assert.deepEqual(theirs.events.items[0].args, ['default']);
    });

  it('unsubscribed session no longer receives events', async () => {
    const subscriber = await open({ serializer: 'cbor' });
    const publisher = await open({ serializer: 'json' });
    const leaving = await collect(subscriber, 'com.example.js.leaving');
    const marker = await collect(subscriber, 'com.example.js.marker');

    await within(subscriber.unsubscribe(leaving.subscription), 'unsubscribe');
    await within(publisher.publish('com.example.js.leaving', ['late'], {}, { acknowledge: true }),
      'publish');
    await within(publisher.publish('com.example.js.marker', ['marker'], {}, { acknowledge: true }),
      'publish');
    await marker.events.waitFor(1);

    assert.deepEqual(leaving.events.items, []);
  });
});
