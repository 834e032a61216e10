'use strict';
// The WAMP meta API with Autobahn|JS: session, registration and subscription meta procedures
// and events, killing sessions, and testaments.
//
// Each h.suite has its own router, and the tests of a suite run one after another, so a test
// may compare what the meta API reports with what the suite's sessions did. Killing sessions
// by role or all at once would affect other tests, so those have a suite of their own.

const assert = require('node:assert/strict');

const h = require('./lib/harness');

const TESTAMENT_TOPIC = 'com.example.js.testament';

/** Subscribes `session` to `topics`; events are collected as {topic, args} in arrival order. */
async function watch(session, topics, within) {
  const events = new h.Collector();
  for (const topic of topics) {
    await within(session.subscribe(topic, (args) => events.add({ topic, args })),
      `subscribe ${topic}`);
  }
  return events;
}

const byIdAscending = (a, b) => a - b;

h.suite('Autobahn|JS meta API: sessions', ({ it, connect, open, within, rejected }) => {
  it('WELCOME announces the meta API features of broker and dealer', async () => {
    const { details } = await connect({ serializer: 'cbor' });

    const broker = details.roles.broker.features;
    const dealer = details.roles.dealer.features;
    for (const feature of ['session_meta_api', 'subscription_meta_api']) {
      assert.equal(broker[feature], true, `broker features: ${JSON.stringify(broker)}`);
    }
    for (const feature of ['session_meta_api', 'registration_meta_api', 'testament_meta_api']) {
      assert.equal(dealer[feature], true, `dealer features: ${JSON.stringify(dealer)}`);
    }
  });

  it('session count and list report the sessions of the realm, filtered by authrole', async () => {
    const asker = await open({ serializer: 'json' });
    const other = await open({ serializer: 'msgpack', transport: 'websocket' });

    const listed = await within(asker.call('wamp.session.list'), 'list');
    const count = await within(asker.call('wamp.session.count'), 'count');
    const anonymous = await within(asker.call('wamp.session.list', [['anonymous']]), 'list');
    const nobody = await within(asker.call('wamp.session.count', [['com.example.nobody']]),
      'count');

    assert.ok(listed.includes(asker.id) && listed.includes(other.id), JSON.stringify(listed));
    assert.equal(count, listed.length);
    assert.deepEqual(anonymous.sort(byIdAscending), listed.sort(byIdAscending));
    assert.equal(nobody, 0);
  });

  for (const [transport, serializer] of [['websocket', 'cbor'], ['rawsocket', 'json']]) {
    it(`session get describes a ${transport}/${serializer} session`, async () => {
      const described = await connect({ transport, serializer });
      const asker = await open({ serializer: 'msgpack' });

      const details = await within(asker.call('wamp.session.get', [described.session.id]), 'get');

      assert.equal(details.session, described.session.id);
      assert.equal(details.authid, described.details.authid);
      assert.equal(details.authrole, 'anonymous');
      assert.equal(details.authmethod, 'anonymous');
      assert.equal(details.authprovider, described.details.authprovider);
      assert.equal(details.transport.type, transport);
      assert.equal(details.transport.serializer, serializer);
      assert.match(details.transport.peer, /^127\.0\.0\.1:\d+$/);
    });
  }

  it('session get of an unknown session fails with no_such_session', async () => {
    const asker = await open({ serializer: 'json' });

    const error = await rejected(asker.call('wamp.session.get', [4242424242]), 'get');

    assert.equal(error.error, 'wamp.error.no_such_session');
  });

  it('watcher sees on_join, then on_leave when a session drops its transport without GOODBYE',
    async () => {
      const watcher = await open({ serializer: 'json' });
      const events = await watch(watcher, ['wamp.session.on_join', 'wamp.session.on_leave'],
        within);

      const dropper = await connect({ transport: 'rawsocket', serializer: 'json' });
      const dropperId = dropper.session.id; // Autobahn|JS forgets it once the session closes
      await events.waitFor(1);
      h.dropTransport(dropper);
      await events.waitFor(2);

      const [join, leave] = events.items;
      assert.equal(join.topic, 'wamp.session.on_join');
      assert.equal(join.args.length, 1);
      const details = join.args[0];
      assert.equal(details.session, dropperId);
      assert.equal(details.authid, dropper.details.authid);
      assert.equal(details.authrole, 'anonymous');
      assert.equal(details.authmethod, 'anonymous');
      assert.equal(details.authprovider, dropper.details.authprovider);
      assert.equal(details.transport.type, 'rawsocket');
      assert.deepEqual(leave, {
        topic: 'wamp.session.on_leave',
        args: [dropperId, dropper.details.authid, 'anonymous'],
      });
    });

  it('kill closes the victim with GOODBYE carrying the reason and message', async () => {
    const killer = await open({ serializer: 'msgpack' });
    const victim = await connect({ serializer: 'cbor' });
    const victimId = victim.session.id; // Autobahn|JS forgets it once the session closes
    const leaves = await watch(killer, ['wamp.session.on_leave'], within);

    // The router publishes on_leave while it runs the kill: the event may come first.
    const result = await within(killer.call('wamp.session.kill', [victimId],
      { reason: 'com.example.maintenance', message: 'back in five minutes' }), 'kill');
    const { details } = await within(victim.closed, 'victim closed');
    await leaves.waitFor(1);

    assert.equal(result, null);
    assert.equal(details.reason, 'com.example.maintenance');
    assert.equal(details.message, 'back in five minutes');
    assert.deepEqual(leaves.items[0].args, [victimId, victim.details.authid, 'anonymous']);
    const listed = await within(killer.call('wamp.session.list'), 'list');
    assert.ok(!listed.includes(victimId), JSON.stringify(listed));
  });

  it('kill without a reason closes the victim with wamp.close.killed', async () => {
    const killer = await open({ serializer: 'json' });
    const victim = await connect({ serializer: 'json', transport: 'rawsocket' });

    await within(killer.call('wamp.session.kill', [victim.session.id]), 'kill');
    const { details } = await within(victim.closed, 'victim closed');

    assert.equal(details.reason, 'wamp.close.killed');
    assert.equal(details.message, '');
  });

  it('kill of the own session fails with no_such_session', async () => {
    const caller = await open({ serializer: 'cbor' });

    const error = await rejected(caller.call('wamp.session.kill', [caller.id]), 'kill');

    assert.equal(error.error, 'wamp.error.no_such_session');
  });

  it('kill with an invalid reason URI fails with invalid_uri and leaves the victim', async () => {
    const killer = await open({ serializer: 'json' });
    const victim = await open({ serializer: 'msgpack' });

    const error = await rejected(
      killer.call('wamp.session.kill', [victim.id], { reason: 'not a uri' }), 'kill');

    assert.equal(error.error, 'wamp.error.invalid_uri');
    assert.ok(victim.isOpen);
  });

  it('kill_by_authid kills the sessions of that authid and returns their ids', async () => {
    const killer = await connect({ serializer: 'cbor' });
    const victim = await connect({ serializer: 'json' });
    const victimId = victim.session.id;

    const killed = await within(killer.session.call('wamp.session.kill_by_authid',
      [victim.details.authid], { reason: 'com.example.revoked' }), 'kill_by_authid');
    const { details } = await within(victim.closed, 'victim closed');
    const own = await within(killer.session.call('wamp.session.kill_by_authid',
      [killer.details.authid]), 'kill_by_authid of own authid');

    assert.deepEqual(killed, [victimId]);
    assert.equal(details.reason, 'com.example.revoked');
    assert.deepEqual(own, []);
  });
});

h.suite('Autobahn|JS meta API: killing by role and killing all', ({ it, connect, open, within }) => {
  it('kill_by_authrole kills the other sessions of that role and returns their count',
    async () => {
      const killer = await open({ serializer: 'json' });
      const victims = [await connect({ serializer: 'msgpack' }),
        await connect({ serializer: 'json', transport: 'rawsocket' })];

      const none = await within(killer.call('wamp.session.kill_by_authrole',
        ['com.example.nobody']), 'kill_by_authrole');
      const count = await within(killer.call('wamp.session.kill_by_authrole', ['anonymous'],
        { reason: 'com.example.role_removed', message: 'role removed' }), 'kill_by_authrole');
      const closed = await Promise.all(victims.map((v) => within(v.closed, 'victim closed')));

      assert.equal(none, 0);
      assert.equal(count, 2);
      for (const { details } of closed) {
        assert.deepEqual([details.reason, details.message],
          ['com.example.role_removed', 'role removed']);
      }
      assert.deepEqual(await within(killer.call('wamp.session.list'), 'list'), [killer.id]);
    });

  it('kill_all returns the count and the caller stays connected and can call', async () => {
    const caller = await open({ serializer: 'cbor' });
    const victims = [await connect({ serializer: 'json' }),
      await connect({ serializer: 'json', transport: 'rawsocket' })];
    const before = await within(caller.call('wamp.session.list'), 'list');

    const count = await within(caller.call('wamp.session.kill_all', [],
      { message: 'closing time' }), 'kill_all');
    const closed = await Promise.all(victims.map((v) => within(v.closed, 'victim closed')));

    assert.equal(count, before.length - 1);
    for (const { details } of closed) {
      assert.deepEqual([details.reason, details.message], ['wamp.close.killed', 'closing time']);
    }
    assert.ok(caller.isOpen);
    assert.deepEqual(await within(caller.call('wamp.session.list'), 'list'), [caller.id]);
    assert.equal(await within(caller.call('wamp.session.count'), 'count'), 1);
  });
});

h.suite('Autobahn|JS meta API: testaments', ({ it, connect, open, within, collect }) => {
  /** A testament whose args and kwargs both carry `label`. */
  async function addTestament(session, label, scope) {
    const kwargs = scope === undefined ? {} : { scope };
    const result = await within(session.call('wamp.session.add_testament',
      [TESTAMENT_TOPIC, [label], { label }], kwargs), 'add_testament');
    assert.equal(result, null);
  }

  const labels = (events) => events.items.map(({ args, kwargs }) => {
    assert.deepEqual(args, [kwargs.label]);
    return kwargs.label;
  });

  it('testaments fire on a dropped transport, detached scope first, each scope in order',
    async () => {
      const { events } = await collect(await open({ serializer: 'json' }), TESTAMENT_TOPIC);
      const testator = await connect({ serializer: 'json', transport: 'rawsocket' });
      await addTestament(testator.session, 'destroyed-1');
      await addTestament(testator.session, 'detached-1', 'detached');
      await addTestament(testator.session, 'destroyed-2', 'destroyed');
      await addTestament(testator.session, 'detached-2', 'detached');

      h.dropTransport(testator);
      await events.waitFor(4);

      assert.deepEqual(labels(events), ['detached-1', 'detached-2', 'destroyed-1', 'destroyed-2']);
    });

  // A flushed testament would be published before the one added after it, so waiting for the
  // later one is enough to know the flushed one is not coming.
  it('flush_testaments removes the testaments of its scope only', async () => {
    const { events } = await collect(await open({ serializer: 'cbor' }), TESTAMENT_TOPIC);
    const testator = await connect({ serializer: 'json', transport: 'rawsocket' });
    await addTestament(testator.session, 'destroyed-flushed');
    await addTestament(testator.session, 'detached-flushed', 'detached');

    await within(testator.session.call('wamp.session.flush_testaments', [], {}), 'flush');
    await within(testator.session.call('wamp.session.flush_testaments', [],
      { scope: 'detached' }), 'flush detached');
    await addTestament(testator.session, 'destroyed-after-flush');
    await addTestament(testator.session, 'detached-after-flush', 'detached');
    h.dropTransport(testator);
    await events.waitFor(2);

    assert.deepEqual(labels(events), ['detached-after-flush', 'destroyed-after-flush']);
  });
});

h.suite('Autobahn|JS meta API: registrations and subscriptions', ({
  it, connect, open, within, rejected,
}) => {
  const kinds = {
    registration: {
      attachEvent: 'on_register',
      detachEvent: 'on_unregister',
      listSessions: 'list_callees',
      countSessions: 'count_callees',
      noSuch: 'wamp.error.no_such_registration',
      attach: (session, uri, options) => session.register(uri, () => null,
        { invoke: 'roundrobin', ...options }),
      detach: (session, handle) => session.unregister(handle),
    },
    subscription: {
      attachEvent: 'on_subscribe',
      detachEvent: 'on_unsubscribe',
      listSessions: 'list_subscribers',
      countSessions: 'count_subscribers',
      noSuch: 'wamp.error.no_such_subscription',
      attach: (session, uri, options) => session.subscribe(uri, () => null, options),
      detach: (session, handle) => session.unsubscribe(handle),
    },
  };

  // A meta procedure's arguments are application payload: a bad value is the call's error, not
  // a protocol violation that ends the caller's session.
  for (const kind of Object.keys(kinds)) {
    it(`${kind} lookup with an unknown match policy fails with invalid_argument, session survives`,
      async () => {
        const client = await connect({ serializer: 'json' });

        const outcome = await within(Promise.race([
          client.session.call(`wamp.${kind}.lookup`, ['com.example.js', { match: 'fuzzy' }])
            .then((value) => ({ value }), (error) => ({ error })),
          client.closed.then(({ details }) => ({ closed: details })),
        ]), 'lookup');

        assert.equal(outcome.closed, undefined,
          `the router closed the session: ${JSON.stringify(outcome.closed)}`);
        assert.equal(outcome.error && outcome.error.error, 'wamp.error.invalid_argument',
          JSON.stringify(outcome));
        assert.equal(typeof await within(client.session.call('wamp.session.count'), 'count'),
          'number');
      });
  }

  for (const [kind, k] of Object.entries(kinds)) {
    it(`${kind} list, lookup, get and the ${k.listSessions}/${k.countSessions} procedures`,
      async () => {
        const first = await open({ serializer: 'json' });
        const second = await open({ serializer: 'cbor' });
        const asker = await open({ serializer: 'msgpack' });
        const uri = `com.example.js.meta.${kind}`;
        const exact = await within(k.attach(first, uri), kind);
        assert.equal((await within(k.attach(second, uri), kind)).id, exact.id);
        const prefix = await within(k.attach(first, uri, { match: 'prefix' }), kind);
        const call = (name, args) => within(asker.call(`wamp.${kind}.${name}`, args), name);

        const lists = await call('list');
        const details = await call('get', [exact.id]);
        const sessions = await call(k.listSessions, [exact.id]);

        assert.ok(lists.exact.includes(exact.id), JSON.stringify(lists));
        assert.ok(lists.prefix.includes(prefix.id), JSON.stringify(lists));
        assert.ok(Array.isArray(lists.wildcard), JSON.stringify(lists));
        assert.equal(await call('lookup', [uri]), exact.id);
        assert.equal(await call('lookup', [uri, { match: 'prefix' }]), prefix.id);
        assert.equal(await call('lookup', [`${uri}.deeper`]), null);
        const { created, ...described } = details;
        assert.ok(!Number.isNaN(Date.parse(created)), `created: ${created}`);
        assert.deepEqual(described, {
          id: exact.id,
          uri,
          match: 'exact',
          ...(kind === 'registration' ? { invoke: 'roundrobin' } : {}),
        });
        assert.deepEqual(sessions.sort(byIdAscending), [first.id, second.id].sort(byIdAscending));
        assert.equal(await call(k.countSessions, [exact.id]), 2);
      });

    it(`${kind} procedures with an unknown id fail with ${k.noSuch}`, async () => {
      const asker = await open({ serializer: 'json' });

      for (const name of ['get', k.listSessions, k.countSessions]) {
        const error = await rejected(asker.call(`wamp.${kind}.${name}`, [4242424242]), name);
        assert.equal(error.error, k.noSuch, name);
      }
    });

    it(`${kind} meta events come as on_create, ${k.attachEvent}, ${k.detachEvent}, on_delete`,
      async () => {
        const watcher = await open({ serializer: 'json' });
        const events = await watch(watcher, ['on_create', k.attachEvent, k.detachEvent, 'on_delete']
          .map((name) => `wamp.${kind}.${name}`), within);
        const first = await open({ serializer: 'cbor' });
        const second = await open({ serializer: 'msgpack', transport: 'websocket' });
        const uri = `com.example.js.meta.watched.${kind}`;
        // The watcher's own subscriptions to subscription meta topics cause events too.
        const aboutThem = () => events.items.filter(({ args }) => [first.id, second.id]
          .includes(args[0]));

        const firstHandle = await within(k.attach(first, uri), kind);
        const secondHandle = await within(k.attach(second, uri), kind);
        await within(k.detach(second, secondHandle), 'detach');
        await within(k.detach(first, firstHandle), 'detach');
        await events.waitUntil(() => aboutThem().length >= 6, `6 ${kind} events`);

        const id = firstHandle.id;
        const [create, ...rest] = aboutThem();
        assert.equal(create.topic, `wamp.${kind}.on_create`);
        assert.equal(create.args[0], first.id);
        assert.equal(create.args[1].id, id);
        assert.equal(create.args[1].uri, uri);
        assert.equal(create.args[1].match, 'exact');
        assert.deepEqual(rest, [
          { topic: `wamp.${kind}.${k.attachEvent}`, args: [first.id, id] },
          { topic: `wamp.${kind}.${k.attachEvent}`, args: [second.id, id] },
          { topic: `wamp.${kind}.${k.detachEvent}`, args: [second.id, id] },
          { topic: `wamp.${kind}.${k.detachEvent}`, args: [first.id, id] },
          { topic: `wamp.${kind}.on_delete`, args: [first.id, id] },
        ]);
      });
  }
});

h.suite('Autobahn|JS meta API across realms', ({ it, connect, open, within, rejected }) => {
  it('a session of another realm is never listed, described, killed or announced', async () => {
    const here = await open({ serializer: 'json', realm: 'realm1' });
    const events = await watch(here, ['wamp.session.on_join', 'wamp.session.on_leave'], within);
    const elsewhere = await connect({ serializer: 'cbor', realm: 'realm2' });
    const id = elsewhere.session.id;

    const listed = await within(here.call('wamp.session.list'), 'list');
    const getError = await rejected(here.call('wamp.session.get', [id]), 'get');
    const killError = await rejected(here.call('wamp.session.kill', [id]), 'kill');
    const killedAll = await within(here.call('wamp.session.kill_all'), 'kill_all');
    // A realm1 session joining afterwards is the first session event the watcher gets.
    const marker = await open({ serializer: 'msgpack', realm: 'realm1' });
    await events.waitFor(1);

    assert.deepEqual(listed, [here.id]);
    assert.equal(getError.error, 'wamp.error.no_such_session');
    assert.equal(killError.error, 'wamp.error.no_such_session');
    assert.equal(killedAll, 0);
    assert.equal(events.items[0].args[0].session, marker.id);
    assert.ok(elsewhere.session.isOpen, 'the realm2 session was closed');
    assert.deepEqual(await within(elsewhere.session.call('wamp.session.list'), 'list'), [id]);
  });
}, { realms: ['realm1', 'realm2'] });
