// Shared by the scenarios that tests/hub_clients.rs runs against the real hub: real clients
// (laravel-echo 2 over pusher-js 8, Node build) and the `pusher` server library, configured from the
// environment the test sets (HUB_PORT, APP_ID, KEY, SECRET, DEADLINE_MS).
//
// Every observation is one JSON line on stdout ({"event": "...", ...}); the Rust test asserts on
// them. Nothing sleeps: each step waits for a callback, with one deadline for the whole scenario
// (on expiry: a {"event":"deadline"} line and exit code 3).
import http from 'node:http';
import Echo from 'laravel-echo';
import PusherJs from 'pusher-js';
import Pusher from 'pusher';

export const env = {
  port: Number(need('HUB_PORT')),
  appId: need('APP_ID'),
  key: need('KEY'),
  secret: need('SECRET'),
  deadlineMs: Number(process.env.DEADLINE_MS || 15000),
};

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return value;
}

/** Prints one observation. */
export function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

const deadline = setTimeout(() => {
  emit('deadline', { ms: env.deadlineMs });
  process.exit(3);
}, env.deadlineMs);

const cleanups = [];

/** Ends the scenario: disconnects every client, closes the auth endpoint, exits 0. */
export function finish() {
  clearTimeout(deadline);
  for (const cleanup of cleanups.reverse()) {
    try {
      cleanup();
    } catch {
      // already closed
    }
  }
  emit('done');
  process.exit(0);
}

/** Fails the scenario with a reason (exit 1). */
export function fail(reason, fields = {}) {
  emit('failed', { reason, ...fields });
  process.exit(1);
}

process.on('unhandledRejection', (err) => fail('unhandled rejection', { error: String(err?.stack || err) }));
process.on('uncaughtException', (err) => fail('uncaught exception', { error: String(err?.stack || err) }));

/** The `pusher` server library (what Laravel's broadcaster does, in Node), pointed at the hub. */
export function server() {
  return new Pusher({
    appId: env.appId,
    key: env.key,
    secret: env.secret,
    host: '127.0.0.1',
    port: String(env.port),
    useTLS: false,
    timeout: 5000,
  });
}

/** `{status, body}` of a `pusher` library call (its promise resolves to a fetch Response). */
export async function call(promise) {
  try {
    const res = await promise;
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  } catch (err) {
    return { status: err.status ?? 0, body: err.body ?? null, error: err.message };
  }
}

/**
 * A stand-in for Laravel's `POST /broadcasting/auth`: form fields `socket_id` and `channel_name`,
 * the user from the `X-User-Id` header (Laravel uses the session; Echo sends `auth.headers`),
 * answered with the `pusher` library's `authorizeChannel`, exactly what Laravel's
 * PusherBroadcaster returns. `badSignature(channel)` makes it sign with a wrong secret.
 * Resolves to the endpoint URL.
 */
export function authEndpoint({ badSignature = () => false } = {}) {
  const good = server();
  const wrong = new Pusher({ appId: env.appId, key: env.key, secret: `${env.secret}-wrong` });
  const srv = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const socketId = form.get('socket_id');
      const channel = form.get('channel_name');
      const userId = Number(req.headers['x-user-id']);
      const signer = badSignature(channel) ? wrong : good;
      // Laravel: user_id is getAuthIdentifier() (a number here), user_info what the channel
      // callback returns.
      const presence = channel.startsWith('presence-')
        ? { user_id: userId, user_info: { id: userId, name: `user ${userId}` } }
        : undefined;
      const answer = signer.authorizeChannel(socketId, channel, presence);
      emit('auth_request', { socket_id: socketId, channel, user_id: userId });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
  });
  cleanups.push(() => srv.close());
  return new Promise((resolve) => {
    srv.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${srv.address().port}/broadcasting/auth`));
  });
}

/**
 * A connected Laravel Echo client (broadcaster `reverb`, as the app's resources/js/echo.js sets
 * it up), resolved once pusher-js reports `connected`. `userId` picks the user the auth endpoint
 * signs for.
 */
export function echo({ authUrl, userId } = {}) {
  const client = new Echo({
    broadcaster: 'reverb',
    key: env.key,
    wsHost: '127.0.0.1',
    wsPort: env.port,
    wssPort: env.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    Pusher: PusherJs,
    authEndpoint: authUrl,
    // A fresh object per client: Echo's default `auth` object is shared between instances.
    auth: { headers: userId === undefined ? {} : { 'X-User-Id': String(userId) } },
  });
  cleanups.push(() => client.disconnect());
  const connection = client.connector.pusher.connection;
  return new Promise((resolve) => {
    const connected = () => {
      connection.unbind('connected', connected);
      resolve(client);
    };
    connection.bind('connected', connected);
  });
}

/** A promise and the function that resolves it (to wait for a callback). */
export function signal() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves once `channel` (an Echo channel) reports its subscription. */
export function subscribed(channel) {
  const s = signal();
  channel.subscribed(() => s.resolve());
  return s.promise;
}

/**
 * Polls `check` (async, returns a value or undefined) until it returns a value. Used only for
 * state the hub exposes through its HTTP API (nothing to wait on there); the scenario deadline
 * bounds it.
 */
export async function until(check) {
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Echo's `private(name).listen(event)` on `client`, resolved once subscribed (a subscription error
 * is reported as a `subscription_error` line). `received` resolves with the first event's data.
 */
export async function listenPrivate(client, name, event) {
  const got = signal();
  const channel = client
    .private(name)
    .listen(event, (data) => got.resolve(data))
    .error((err) => emit('subscription_error', { error: err }));
  await subscribed(channel);
  emit('subscribed', { channel: `private-${name}` });
  return { received: got.promise };
}

