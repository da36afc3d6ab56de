// Echo `.error(cb)` fires when the hub refuses a private subscription (the auth endpoint signed
// with the wrong secret), and the connection stays up: same socket, and a public subscription made
// afterwards still receives events.
import { authEndpoint, echo, emit, finish, server, call, subscribed, signal } from './lib.js';

const authUrl = await authEndpoint({ badSignature: (channel) => channel === 'private-workspace.7' });
const client = await echo({ authUrl, userId: 1 });
const pusher = client.connector.pusher;
const states = [];
pusher.connection.bind('state_change', (s) => states.push(`${s.previous}->${s.current}`));
emit('connected', { socket_id: client.socketId() });

const refused = signal();
client
  .private('workspace.7')
  .listen('.qr-code-generated', (data) => emit('received', { channel: 'private-workspace.7', data }))
  .error((error) => {
    emit('subscription_error', { channel: 'private-workspace.7', error });
    refused.resolve();
  });
await refused.promise;

const got = signal();
const channel = client.channel('workspace.7').listen('.account-status-changed', (data) => got.resolve(data));
await subscribed(channel);
const sent = await call(server().trigger('workspace.7', 'account-status-changed', { status: 'ready' }));
emit('triggered', sent);
emit('received', { channel: 'workspace.7', data: await got.promise });
emit('still_connected', { socket_id: client.socketId(), state: pusher.connection.state, state_changes: states });
finish();
