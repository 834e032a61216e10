'use strict';
// Remote procedure calls between Autobahn|JS sessions through Junction, over WebSocket with
// JSON, MessagePack and CBOR, plus RawSocket (Autobahn|JS speaks it with JSON only).

const assert = require('node:assert/strict');

const h = require('./lib/harness');

const { autobahn } = h;

h.suite('Autobahn|JS remote procedure calls', ({ it, open, within, rejected }) => {
  for (const serializer of h.SERIALIZERS) {
    it(`call over ${serializer} delivers a single positional result as a bare value`, async () => {
      const callee = await open({ serializer });
      const caller = await open({ serializer });
      const uri = `com.example.js.add.${serializer}`;
      await within(callee.register(uri, (args) => args[0] + args[1]), 'register');

      const result = await within(caller.call(uri, [2, 3]), 'call');

      assert.equal(result, 5);
    });

    it(`call over ${serializer} passes args and kwargs to the callee and back`, async () => {
      const callee = await open({ serializer });
      const caller = await open({ serializer });
      const uri = `com.example.js.echo.${serializer}`;
      const seen = [];
      await within(callee.register(uri, (args, kwargs) => {
        seen.push({ args, kwargs });
        return new autobahn.Result([...args].reverse(), { got: kwargs });
      }), 'register');

      const payload = { text: 'grüße ✓ 日本', nested: { list: [1, 2.5, null, true, -7] } };
      const result = await within(caller.call(uri, ['a', 2, payload], { key: 'value' }), 'call');

      assert.deepEqual(seen, [{ args: ['a', 2, payload], kwargs: { key: 'value' } }]);
      assert.ok(result instanceof autobahn.Result, `expected a Result, got ${JSON.stringify(result)}`);
      assert.deepEqual(result.args, [payload, 2, 'a']);
      assert.deepEqual(result.kwargs, { got: { key: 'value' } });
    });

    it(`application error over ${serializer} reaches the caller with args and kwargs`, async () => {
      const callee = await open({ serializer });
      const caller = await open({ serializer });
      const uri = `com.example.js.refuse.${serializer}`;
      await within(callee.register(uri, (args) => {
        throw new autobahn.Error('com.example.error.insufficient_funds', ['not enough', args[0]],
          { balance: 7 });
      }), 'register');

      const error = await rejected(caller.call(uri, [100]), 'call');

      assert.equal(error.error, 'com.example.error.insufficient_funds');
      assert.deepEqual(error.args, ['not enough', 100]);
      assert.deepEqual(error.kwargs, { balance: 7 });
    });

    it(`call to an unknown procedure over ${serializer} fails with no_such_procedure`, async () => {
      const caller = await open({ serializer });

      const error = await rejected(caller.call(`com.example.js.nobody.${serializer}`), 'call');

      assert.equal(error.error, 'wamp.error.no_such_procedure');
    });
  }

  it('registering a taken procedure fails with procedure_already_exists', async () => {
    const first = await open({ serializer: 'msgpack' });
    const second = await open({ serializer: 'cbor' });
    await within(first.register('com.example.js.taken', () => 'first'), 'register');

    const error = await rejected(second.register('com.example.js.taken', () => 'second'),
      'second registration');

    assert.equal(error.error, 'wamp.error.procedure_already_exists');
  });

  it('unregistered procedure is no longer callable', async () => {
    const callee = await open({ serializer: 'json' });
    const caller = await open({ serializer: 'msgpack' });
    const registration = await within(callee.register('com.example.js.gone', () => 'here'),
      'register');
    assert.equal(await within(caller.call('com.example.js.gone'), 'call'), 'here');

    await within(callee.unregister(registration), 'unregister');
    const error = await rejected(caller.call('com.example.js.gone'), 'call');

    assert.equal(error.error, 'wamp.error.no_such_procedure');
  });

  it('json caller reaches cbor callee and msgpack callee', async () => {
    const cborCallee = await open({ serializer: 'cbor' });
    const msgpackCallee = await open({ serializer: 'msgpack' });
    const caller = await open({ serializer: 'json' });
    await within(cborCallee.register('com.example.js.cbor_side',
      (args, kwargs) => new autobahn.Result(['cbor', ...args], kwargs)), 'register');
    await within(msgpackCallee.register('com.example.js.msgpack_side',
      (args, kwargs) => new autobahn.Result(['msgpack', ...args], kwargs)), 'register');

    const viaCbor = await within(caller.call('com.example.js.cbor_side', [1, 'x'], { k: [true] }),
      'call');
    const viaMsgpack = await within(
      caller.call('com.example.js.msgpack_side', [2.5, null], { k: { deep: 'v' } }), 'call');

    assert.deepEqual([viaCbor.args, viaCbor.kwargs], [['cbor', 1, 'x'], { k: [true] }]);
    assert.deepEqual([viaMsgpack.args, viaMsgpack.kwargs],
      [['msgpack', 2.5, null], { k: { deep: 'v' } }]);
  });

  it('binary Buffer survives a call between cbor caller and msgpack callee', async () => {
    const callee = await open({ serializer: 'msgpack' });
    const caller = await open({ serializer: 'cbor' });
    const payload = Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 7) % 256));
    const received = [];
    await within(callee.register('com.example.js.bytes', (args) => {
      received.push(args[0]);
      return Buffer.from(args[0]).reverse();
    }), 'register');

    const result = await within(caller.call('com.example.js.bytes', [payload]), 'call');

    assert.ok(Buffer.isBuffer(received[0]), `callee got ${typeof received[0]}`);
    assert.ok(received[0].equals(payload), 'callee got different bytes');
    assert.ok(Buffer.isBuffer(result), `caller got ${typeof result}`);
    assert.ok(result.equals(Buffer.from(payload).reverse()), 'caller got different bytes');
  });

  it('rawsocket json caller reaches websocket cbor callee', async () => {
    const callee = await open({ serializer: 'cbor' });
    const caller = await open({ serializer: 'json', transport: 'rawsocket' });
    await within(callee.register('com.example.js.over_rawsocket', (args) => args[0] * 2),
      'register');

    assert.equal(await within(caller.call('com.example.js.over_rawsocket', [21]), 'call'), 42);
  });
});
