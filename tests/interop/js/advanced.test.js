'use strict';
// Advanced Profile features through Junction, as far as Autobahn|JS 22.11.1 can use them:
// progressive call results, call timeout and cancel, caller and publisher disclosure, pattern
// registrations and subscriptions, shared registrations, subscriber black/white listing and
// retained events. What Autobahn|JS cannot send is covered with hand-written frames in
// tests/interop/python/test_advanced.py.
//
// A test that checks that something is NOT delivered never waits for a fixed time: it makes the
// router send a later message to the same session (a marker) and waits for that one, since the
// router handles one session's messages in order.

const assert = require('node:assert/strict');

const h = require('./lib/harness');

const { autobahn, Collector } = h;

// A realm from a configuration file: there disclose_caller and disclose_publisher default to
// false, so identities are disclosed only when asked for.
const PLAIN_REALM_CONFIG = '[[realms]]\nname = "realm1"\n';

/** A promise that never settles until `release(value)` is called; for slow callees. */
function pending() {
  let release;
  const promise = new Promise((resolve) => { release = resolve; });
  return { promise, release };
}

h.suite('Autobahn|JS advanced RPC', ({ it, open, connect, within, rejected }) => {
  for (const serializer of h.SERIALIZERS) {
    it(`progressive results over ${serializer} arrive in order before the final result`,
      async () => {
        const callee = await open({ serializer });
        const caller = await open({ serializer: serializer === 'json' ? 'cbor' : 'json' });
        const uri = `com.example.js.countdown.${serializer}`;
        await within(callee.register(uri, (args, kwargs, details) => {
          assert.equal(typeof details.progress, 'function',
            'INVOCATION did not carry receive_progress');
          for (let n = args[0]; n > 0; n--) details.progress([n], { remaining: n });
          return 'liftoff';
        }), 'register');
        const progress = new Collector();

        const result = await within(caller.call(uri, [3], {}, { receive_progress: true })
          .then((value) => value, (error) => { throw error; }, (update) => progress.add(update)),
        'call');

        const updates = await progress.waitFor(3);
        assert.deepEqual(updates.map((u) => [u.args, u.kwargs]),
          [[[3], { remaining: 3 }], [[2], { remaining: 2 }], [[1], { remaining: 1 }]]);
        assert.equal(result, 'liftoff');
      });
  }

  it('callee is not offered progress when the caller did not ask for it', async () => {
    const callee = await open({ serializer: 'msgpack' });
    const caller = await open();
    const offered = [];
    await within(callee.register('com.example.js.no_progress', (args, kwargs, details) => {
      offered.push(typeof details.progress);
      return 'done';
    }), 'register');

    assert.equal(await within(caller.call('com.example.js.no_progress'), 'call'), 'done');
    assert.deepEqual(offered, ['object']); // null: no receive_progress in INVOCATION.Details
  });

  it('call timeout is enforced by the router and the late answer is dropped', async () => {
    const callee = await open({ serializer: 'cbor' });
    const caller = await open({ serializer: 'json' });
    const slow = pending();
    const started = new Collector();
    await within(callee.register('com.example.js.slow', () => {
      started.add('started');
      return slow.promise;
    }), 'register');
    await within(callee.register('com.example.js.ping_after_timeout', () => 'pong'), 'register');
    const begun = Date.now();

    const error = await rejected(caller.call('com.example.js.slow', [], {}, { timeout: 250 }),
      'call with timeout');

    const elapsed = Date.now() - begun;
    assert.equal(error.error, 'wamp.error.timeout');
    assert.ok(elapsed >= 240, `timed out after ${elapsed} ms, before the 250 ms asked for`);
    await started.waitFor(1);
    // The callee answers now. Autobahn|JS treats a RESULT for a finished call as a protocol
    // violation and closes its session, so the next call only succeeds if the router dropped
    // the late answer (and the callee, which did not announce call_canceling, got no INTERRUPT).
    slow.release('too late');
    assert.equal(await within(caller.call('com.example.js.ping_after_timeout'),
      'call after timeout'), 'pong');
  });

  it('cancel in kill mode of a call to a callee without call_canceling fails the call at once',
    async () => {
      // Autobahn|JS callees do not announce call_canceling, so the router treats every cancel as
      // skip: ERROR wamp.error.canceled to the caller now, nothing to the callee. (Autobahn|JS
      // 22.11.1 only keeps waiting for the router's ERROR in kill mode; in the other modes it
      // rejects the call itself and then treats the router's ERROR as a protocol violation.)
      const callee = await open({ serializer: 'msgpack' });
      const caller = await open({ serializer: 'json' });
      const slow = pending();
      const started = new Collector();
      await within(callee.register('com.example.js.cancel_me', () => {
        started.add('started');
        return slow.promise;
      }), 'register');
      await within(callee.register('com.example.js.ping_after_cancel', () => 'pong'), 'register');
      const call = caller.call('com.example.js.cancel_me');
      await started.waitFor(1);

      call.cancel({ mode: 'kill' });

      const error = await rejected(call, 'canceled call');
      assert.equal(error.error, 'wamp.error.canceled');
      slow.release('too late');
      for (const what of ['call after cancel', 'second call']) {
        assert.equal(await within(caller.call('com.example.js.ping_after_cancel'), what), 'pong');
      }
    });

  it('shared registration with invoke roundrobin alternates between callees under one id',
    async () => {
      const first = await open({ serializer: 'json' });
      const second = await open({ serializer: 'cbor' });
      const caller = await open({ serializer: 'msgpack' });
      const registrations = [];
      for (const [session, name] of [[first, 'first'], [second, 'second']]) {
        registrations.push(await within(session.register('com.example.js.rr', () => name,
          { invoke: 'roundrobin' }), 'register'));
      }

      const answers = [];
      for (let i = 0; i < 5; i++) {
        answers.push(await within(caller.call('com.example.js.rr'), 'call'));
      }

      assert.deepEqual(answers, ['first', 'second', 'first', 'second', 'first']);
      assert.equal(registrations[0].id, registrations[1].id);
    });

  it('shared registration with a different invoke policy is refused', async () => {
    const first = await open();
    const second = await open();
    await within(first.register('com.example.js.policy', () => 1, { invoke: 'first' }), 'register');

    const error = await rejected(second.register('com.example.js.policy', () => 2,
      { invoke: 'last' }), 'register with another policy');

    assert.equal(error.error, 'wamp.error.procedure_already_exists');
  });

  it('pattern registrations route by precedence and tell the callee the called procedure',
    async () => {
      const callee = await open({ serializer: 'cbor' });
      const caller = await open({ serializer: 'json' });
      const handler = (name) => (args, kwargs, details) => [name, details.procedure];
      await within(callee.register('com.example.js.tree', handler('prefix'), { match: 'prefix' }),
        'register prefix');
      await within(callee.register('com.example.js..leaf', handler('wildcard'),
        { match: 'wildcard' }), 'register wildcard');
      await within(callee.register('com.example.js.tree.leaf', handler('exact')), 'register exact');

      const routed = {};
      for (const uri of ['com.example.js.tree.leaf', 'com.example.js.tree.branch',
        'com.example.js.bush.leaf']) {
        const result = await within(caller.call(uri), `call ${uri}`);
        routed[uri] = result instanceof autobahn.Result ? result.args : result;
      }

      assert.deepEqual(routed['com.example.js.tree.leaf'],
        ['exact', 'com.example.js.tree.leaf']);
      assert.deepEqual(routed['com.example.js.tree.branch'],
        ['prefix', 'com.example.js.tree.branch']);
      assert.deepEqual(routed['com.example.js.bush.leaf'],
        ['wildcard', 'com.example.js.bush.leaf']);
    });

  it('default realm discloses the caller to the callee without disclose_me', async () => {
    const callee = await open();
    const client = await connect({ serializer: 'msgpack' });
    const seen = [];
    await within(callee.register('com.example.js.who', (args, kwargs, details) => {
      seen.push([details.caller, details.caller_authid, details.caller_authrole]);
    }), 'register');

    await within(client.session.call('com.example.js.who'), 'call');

    assert.deepEqual(seen, [[client.session.id, client.details.authid, 'anonymous']]);
  });
});

h.suite('Autobahn|JS disclosure on a realm that does not disclose by default',
  ({ it, open, connect, within, collect }) => {
    it('caller is disclosed to the callee only with disclose_me', async () => {
      const callee = await open({ serializer: 'cbor' });
      const client = await connect({ serializer: 'json' });
      const seen = [];
      await within(callee.register('com.example.js.who', (args, kwargs, details) => {
        seen.push([details.caller, details.caller_authid, details.caller_authrole]);
      }), 'register');

      await within(client.session.call('com.example.js.who'), 'call');
      await within(client.session.call('com.example.js.who', [], {}, { disclose_me: true }),
        'call with disclose_me');

      assert.deepEqual(seen, [
        [undefined, undefined, undefined],
        [client.session.id, client.details.authid, 'anonymous'],
      ]);
    });

    it('publisher is disclosed to subscribers only with disclose_me', async () => {
      const { events } = await collect(await open({ serializer: 'msgpack' }), 'com.example.js.who');
      const client = await connect({ serializer: 'json' });

      await within(client.session.publish('com.example.js.who', ['quiet'], {},
        { acknowledge: true }), 'publish');
      await within(client.session.publish('com.example.js.who', ['loud'], {},
        { acknowledge: true, disclose_me: true }), 'publish with disclose_me');

      const [quiet, loud] = await events.waitFor(2);
      assert.deepEqual(quiet.args, ['quiet']);
      assert.equal(quiet.details.publisher, undefined);
      assert.deepEqual(loud.args, ['loud']);
      assert.deepEqual(
        [loud.details.publisher, loud.details.publisher_authid, loud.details.publisher_authrole],
        [client.session.id, client.details.authid, 'anonymous']);
    });
  }, { config: PLAIN_REALM_CONFIG });

h.suite('Autobahn|JS advanced publish and subscribe', ({ it, open, within, collect }) => {
  it('pattern subscriptions receive one event each with the published topic', async () => {
    const subscriber = await open({ serializer: 'cbor' });
    const publisher = await open({ serializer: 'json' });
    const prefix = await collect(subscriber, 'com.example.js.house', { match: 'prefix' });
    const wildcard = await collect(subscriber, 'com.example.js.house..temperature',
      { match: 'wildcard' });

    for (const topic of ['com.example.js.house.kitchen.temperature',
      'com.example.js.house.kitchen.humidity', 'com.example.js.house.hall.temperature']) {
      await within(publisher.publish(topic, [topic], {}, { acknowledge: true }), 'publish');
    }

    const viaPrefix = await prefix.events.waitFor(3);
    const viaWildcard = await wildcard.events.waitFor(2);
    assert.deepEqual(viaPrefix.map((e) => e.details.topic), [
      'com.example.js.house.kitchen.temperature', 'com.example.js.house.kitchen.humidity',
      'com.example.js.house.hall.temperature']);
    assert.deepEqual(viaWildcard.map((e) => e.details.topic), [
      'com.example.js.house.kitchen.temperature', 'com.example.js.house.hall.temperature']);
    assert.notEqual(prefix.subscription.id, wildcard.subscription.id);
  });

  it('publish with exclude and eligible reaches exactly the selected subscribers', async () => {
    const names = ['a', 'b', 'c'];
    const sessions = {};
    const received = {};
    for (const [name, serializer] of [['a', 'json'], ['b', 'msgpack'], ['c', 'cbor']]) {
      sessions[name] = await open({ serializer });
      received[name] = (await collect(sessions[name], 'com.example.js.bw')).events;
    }
    const publisher = await open();
    const id = (name) => sessions[name].id;

    for (const [n, options] of [
      [1, { exclude: [id('a')] }],
      [2, { eligible: [id('b'), id('c')] }],
      [3, { eligible: [id('a'), id('b')], exclude: [id('a')] }],
      [4, { exclude_authrole: ['anonymous'] }],
      [5, {}], // the marker
    ]) {
      await within(publisher.publish('com.example.js.bw', [n], {},
        { acknowledge: true, ...options }), 'publish');
    }

    const got = {};
    for (const name of names) {
      const items = await received[name].waitUntil((list) => list.some((e) => e.args[0] === 5),
        `${name}: the marker event`);
      got[name] = items.map((e) => e.args[0]);
    }
    assert.deepEqual(got, { a: [5], b: [1, 2, 3, 5], c: [1, 2, 5] });
  });

  it('subscriber asking for the retained event gets the latest one marked retained', async () => {
    const publisher = await open({ serializer: 'msgpack' });
    for (const value of ['rain', 'sun']) {
      await within(publisher.publish('com.example.js.weather', [value], {},
        { acknowledge: true, retain: true }), 'publish retained');
    }
    const { events } = await collect(await open({ serializer: 'cbor' }), 'com.example.js.weather',
      { get_retained: true });
    await within(publisher.publish('com.example.js.weather', ['marker'], {},
      { acknowledge: true }), 'publish marker');

    const [retained, marker] = await events.waitFor(2);
    assert.deepEqual(retained.args, ['sun']);
    assert.equal(retained.details.retained, true);
    assert.deepEqual(marker.args, ['marker']);
    assert.equal(marker.details.retained, false);
  });
});
