'use strict';
// Test harness for the Autobahn|JS interop tests: start the real `junction` binary on a free
// loopback port with its own data directory, and open Autobahn|JS sessions to it.

const { execFileSync, spawn } = require('node:child_process');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { describe, before, after, test } = require('node:test');

// Autobahn|JS binds console.warn when it is loaded and warns on every normal connection close;
// drop just those two routine messages so test output shows what matters.
const routineWarnings = [/^connection closed$/, /^auto-reconnect disabled!$/];
const originalWarn = console.warn;
console.warn = (...args) => {
  if (typeof args[0] === 'string' && routineWarnings.some((re) => re.test(args[0]))) return;
  originalWarn.apply(console, args);
};
const autobahn = require('autobahn');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const REALM = 'realm1';
// Every wait is bounded by one of these (milliseconds).
const STARTUP_TIMEOUT = 10000;
const STOP_TIMEOUT = 5000;
const RECV_TIMEOUT = 5000;

const SERIALIZERS = ['json', 'msgpack', 'cbor'];

function junctionBinary() {
  return process.env.JUNCTION_BIN
    ? path.resolve(process.env.JUNCTION_BIN)
    : path.join(REPO_ROOT, 'target', 'debug', 'junction');
}

/** A loopback TCP port that was free a moment ago (bind port 0, read it, close). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(500);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
    socket.once('error', () => resolve(false));
  });
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Rejects with `message` (a string, or a function giving one) if `promise` has not settled
 * within `ms`.
 */
function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const text = typeof message === 'function' ? message() : message;
      reject(new Error(`${text} (timed out after ${ms} ms)`));
    }, ms);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

/**
 * Writes a self-signed certificate for 127.0.0.1 and localhost, and its key, into `dir` with
 * the openssl command line (as docs/security.md shows); returns {certPath, keyPath, certPem}.
 */
function makeCertificate(dir) {
  const certPath = path.join(dir, 'cert.pem');
  const keyPath = path.join(dir, 'key.pem');
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-days', '1', '-keyout', keyPath, '-out', certPath, '-subj', '/CN=junction-js-test',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`cannot make a test certificate with openssl: ${e.message}`);
  }
  return { certPath, keyPath, certPem: fs.readFileSync(certPath, 'utf8') };
}

/** The `[tls]` section of a configuration file: a TLS listener on `port`. */
function tlsConfig(port, { certPath, keyPath }) {
  return `[tls]\nlisten = ["127.0.0.1:${port}"]\ncert = ${JSON.stringify(certPath)}\n` +
    `key = ${JSON.stringify(keyPath)}\n\n`;
}

/** A configuration file (docs/configuration.md) that opens `realms` to anonymous clients. */
function realmsConfig(realms) {
  return realms.map((name) => `[[realms]]\nname = ${JSON.stringify(name)}\n\n`).join('');
}

class Router {
  /**
   * `realms`: realms to open instead of the default `realm1` (written to a config file);
   * `config`: a whole configuration file (TOML) instead, which takes precedence over `realms`;
   * `tls`: also listen with TLS on a second port (`wssUrl`), with a self-signed certificate
   * made for this router (`tlsAgent()` trusts it).
   */
  constructor({ realms = null, config = null, tls = false } = {}) {
    this.workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'junction-js-'));
    this.dataDir = path.join(this.workdir, 'data');
    this.logPath = path.join(this.workdir, 'router.log');
    this.realms = realms;
    this.config = config;
    this.certificate = tls ? makeCertificate(this.workdir) : null;
    this.port = null;
    this.tlsPort = null;
    this.proc = null;
    this.exit = null; // {code, signal} once the process has exited
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get wssUrl() {
    return `wss://127.0.0.1:${this.tlsPort}/ws`;
  }

  /**
   * An HTTPS agent that trusts this router's certificate (and nothing else); `options` are more
   * TLS options (such as `maxVersion`).
   */
  tlsAgent(options = {}) {
    return new https.Agent({ ca: this.certificate.certPem, ...options });
  }

  async start() {
    const binary = junctionBinary();
    if (!fs.existsSync(binary)) {
      throw new Error(`junction binary not found at ${binary}; build it with ` +
        '`cargo build -p junction --bin junction` or set JUNCTION_BIN');
    }
    fs.mkdirSync(this.dataDir, { recursive: true });
    const configPath = path.join(this.workdir, 'junction.toml');
    const configArgs = [];
    if (this.config !== null || this.realms !== null || this.certificate !== null) {
      configArgs.push('--config', configPath);
    }
    // A port picked by freePort() can be taken by a parallel test before the router binds it;
    // the router then exits early and we try other ports.
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await freePort();
      if (configArgs.length > 0) {
        let config = this.config !== null ? this.config : realmsConfig(this.realms || [REALM]);
        if (this.certificate !== null) {
          this.tlsPort = await freePort();
          config = tlsConfig(this.tlsPort, this.certificate) + config;
        }
        fs.writeFileSync(configPath, config);
      }
      const log = fs.openSync(this.logPath, 'a');
      this.exit = null;
      this.proc = spawn(binary, [
        'serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, ...configArgs,
      ], { cwd: this.workdir, stdio: ['ignore', log, log] });
      fs.closeSync(log);
      const exited = new Promise((resolve) => {
        this.proc.once('exit', (code, signal) => { this.exit = { code, signal }; resolve(); });
      });
      this.exited = exited;
      const deadline = Date.now() + STARTUP_TIMEOUT;
      while (Date.now() < deadline && this.exit === null) {
        if (await canConnect(this.port)
          && (this.tlsPort === null || await canConnect(this.tlsPort))) return this;
        await delay(50);
      }
      await this.kill();
    }
    throw new Error(`junction did not accept connections within ${STARTUP_TIMEOUT} ms. ` +
      `Log:\n${this.logTail()}`);
  }

  isRunning() {
    return this.proc !== null && this.exit === null;
  }

  async kill() {
    if (this.isRunning()) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }

  /** SIGTERM, then SIGKILL if the router has not exited within STOP_TIMEOUT. */
  async stop() {
    if (this.isRunning()) {
      this.proc.kill('SIGTERM');
      try {
        await withTimeout(this.exited, STOP_TIMEOUT, 'router did not exit on SIGTERM');
      } catch (e) {
        await this.kill();
      }
    }
    fs.rmSync(this.workdir, { recursive: true, force: true });
  }

  logTail(maxChars = 6000) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').slice(-maxChars);
    } catch (e) {
      return '(no router log)';
    }
  }
}

async function startRouter(options) {
  const router = new Router(options);
  await router.start();
  return router;
}

/**
 * Wrap a test body so that a failure carries the tail of the router's log, and a router that
 * died during the test is reported as such.
 */
function withRouterLog(getRouter, body) {
  return async (t) => {
    try {
      await body(t);
    } catch (thrown) {
      // Autobahn|JS rejects calls with its own Error objects ({error, args, kwargs}), which have
      // no message: wrap them so the failure shows what was thrown.
      const e = thrown instanceof Error ? thrown
        : new Error(`non-Error thrown: ${JSON.stringify(thrown)}`);
      const router = getRouter();
      if (router) {
        const state = router.isRunning() ? 'running' : `exited ${JSON.stringify(router.exit)}`;
        e.message += `\n--- junction router (port ${router.port}, ${state}) log tail ---\n` +
          router.logTail(3000);
      }
      throw e;
    }
  };
}

function serializerOptions(name) {
  switch (name) {
    case 'json':
      return { protocols: ['wamp.2.json'], serializers: [new autobahn.serializer.JSONSerializer()] };
    case 'msgpack':
      return { protocols: ['wamp.2.msgpack'], serializers: [new autobahn.serializer.MsgpackSerializer()] };
    case 'cbor':
      return { protocols: ['wamp.2.cbor'], serializers: [new autobahn.serializer.CBORSerializer()] };
    default:
      throw new Error(`unknown serializer ${name}`);
  }
}

/**
 * Open an Autobahn|JS connection and wait until its session has joined the realm.
 * Resolves to {connection, session, details, closed}; `closed` resolves with
 * {reason, details} when the connection closes. No automatic reconnects.
 */
function connect(router, { serializer = 'json', transport = 'websocket', realm = REALM } = {}) {
  const options = {
    realm,
    max_retries: 0,
    retry_if_unreachable: false,
    ...serializerOptions(serializer),
  };
  if (transport === 'websocket') {
    options.url = router.wsUrl;
  } else if (transport === 'rawsocket') {
    // Autobahn|JS speaks RawSocket with JSON only.
    options.transports = [{ type: 'rawsocket', host: '127.0.0.1', port: router.port }];
  } else {
    throw new Error(`unknown transport ${transport}`);
  }
  const connection = new autobahn.Connection(options);
  let resolveClosed;
  const closed = new Promise((resolve) => { resolveClosed = resolve; });
  const joined = new Promise((resolve, reject) => {
    connection.onopen = (session, details) => resolve({ connection, session, details, closed });
    connection.onclose = (reason, details) => {
      reject(new Error(`connection closed before join: ${reason} ${JSON.stringify(details)}`));
      resolveClosed({ reason, details });
      return true; // never reconnect
    };
  });
  connection.open();
  return withTimeout(joined, RECV_TIMEOUT, `joining ${realm} over ${transport}/${serializer}`);
}

/** Close a connection opened by connect() and wait (bounded) until it is closed. */
async function disconnect(client) {
  if (!client || !client.connection.isOpen) return;
  try {
    client.connection.close();
    await withTimeout(client.closed, STOP_TIMEOUT, 'closing connection');
  } catch (e) {
    // The router may already be gone; nothing else to clean up.
  }
}

/** The error `promise` rejects with; fails with `what` and the value if it resolves instead. */
async function rejection(promise, what) {
  let value;
  try {
    value = await promise;
  } catch (e) {
    return e;
  }
  return assert.fail(`${what} succeeded with ${JSON.stringify(value)}`);
}

/**
 * End a client's transport without a WAMP GOODBYE: over RawSocket the TCP connection is simply
 * ended; over WebSocket only the WebSocket closing handshake is sent (Autobahn|JS keeps its
 * socket private).
 */
function dropTransport(client) {
  client.connection._transport.close();
}

/** Collects callback values; `waitFor(n)` resolves once n values arrived (bounded). */
class Collector {
  constructor() {
    this.items = [];
    this.waiters = [];
  }

  add(item) {
    this.items.push(item);
    this.waiters = this.waiters.filter(({ done, resolve }) => {
      if (done(this.items)) { resolve(this.items); return false; }
      return true;
    });
  }

  waitFor(count = 1, ms = RECV_TIMEOUT) {
    return this.waitUntil((items) => items.length >= count, `${count} item(s)`, ms);
  }

  /** Resolves to the items once `done(items)` holds; `what` names the wait in the failure. */
  waitUntil(done, what, ms = RECV_TIMEOUT) {
    if (done(this.items)) return Promise.resolve(this.items);
    const arrived = new Promise((resolve) => this.waiters.push({ done, resolve }));
    return withTimeout(arrived, ms, () => `waiting for ${what}, got ${this.items.length}: ` +
      JSON.stringify(this.items));
  }
}

/**
 * A `describe` block with a router of its own: started before its tests, stopped after them,
 * and reported if it exited while they ran. `body` receives the suite's tools:
 *
 * - `it(name, fn)`: a test whose failure carries the tail of the router's log;
 * - `connect(options)`: a client of connect(), closed when the suite ends;
 * - `open(options)`: the same, resolving to just the session;
 * - `within(promise, what)`: the promise, bounded by RECV_TIMEOUT;
 * - `rejected(promise, what)`: the error the promise rejects with (bounded); fails if it resolves;
 * - `collect(session, topic, options)`: subscribes and collects events as {args, kwargs, details};
 *   resolves to {events (a Collector), subscription};
 * - `router()`: the running Router.
 *
 * `routerOptions` are passed to the Router (for instance `{ realms: ['realm1', 'realm2'] }`, or
 * `{ config: '<TOML>' }`).
 */
function suite(name, body, routerOptions = {}) {
  describe(name, () => {
    let router;
    const clients = [];
    const tools = {
      router: () => router,
      it: (testName, fn) => test(testName, withRouterLog(() => router, fn)),
      within: (promise, what) => withTimeout(promise, RECV_TIMEOUT, what),
      rejected: (promise, what) => withTimeout(rejection(promise, what), RECV_TIMEOUT, what),
      async connect(options) {
        const client = await connect(router, options);
        clients.push(client);
        return client;
      },
      async open(options) {
        return (await tools.connect(options)).session;
      },
      async collect(session, topic, options = {}) {
        const events = new Collector();
        const subscription = await tools.within(session.subscribe(topic, (args, kwargs, details) => {
          events.add({ args, kwargs, details });
        }, options), `subscribe ${topic}`);
        return { events, subscription };
      },
    };

    before(async () => {
      router = await startRouter(routerOptions);
    });

    after(async () => {
      for (const client of clients) await disconnect(client);
      const alive = router.isRunning();
      const { exit } = router;
      const log = router.logTail();
      await router.stop();
      assert.ok(alive, `junction exited during the tests ${JSON.stringify(exit)}:\n${log}`);
    });

    body(tools);
  });
}

module.exports = {
  REALM,
  RECV_TIMEOUT,
  SERIALIZERS,
  Collector,
  autobahn,
  connect,
  disconnect,
  dropTransport,
  startRouter,
  suite,
  withRouterLog,
  withTimeout,
};
