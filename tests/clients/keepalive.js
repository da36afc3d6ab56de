// pusher-js against an app with a short activity_timeout: the handshake is accepted (pusher-js
// refuses `activity_timeout: 0`), the client adopts the hub's timeout, and idle pings keep the
// same connection up (the hub's `pusher:ping`s are answered, no reconnect).
import { echo, emit, finish, signal } from './lib.js';

const PINGS = Number(process.env.PINGS || 3);
const client = await echo();
const connection = client.connector.pusher.connection;
const socketId = client.socketId();
emit('connected', { socket_id: socketId, activity_timeout_ms: connection.activityTimeout });
const states = [];
connection.bind('state_change', (s) => states.push(`${s.previous}->${s.current}`));
const enough = signal();
const seen = [];
connection.bind('message', (message) => {
  if (message.event === 'pusher:ping' || message.event === 'pusher:pong') {
    seen.push(message.event);
    emit('keepalive', { frame: message.event });
    if (seen.length >= PINGS) enough.resolve();
  }
});
await enough.promise;
emit('still_connected', { socket_id: client.socketId(), state: connection.state, state_changes: states });
finish();
