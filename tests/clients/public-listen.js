// Echo `channel('workspace.7').listen('.account-status-changed')` receives what the `pusher`
// server library sends with `trigger` through the hub's HTTP API.
import { echo, emit, finish, server, call, subscribed, signal } from './lib.js';

const client = await echo();
emit('connected', { socket_id: client.socketId() });
const got = signal();
const channel = client.channel('workspace.7').listen('.account-status-changed', (data) => got.resolve(data));
await subscribed(channel);
emit('subscribed', { channel: 'workspace.7' });
const payload = { workspace_id: 7, account_id: 'webjs_7_1700000000_ab12', status: 'ready' };
const sent = await call(server().trigger('workspace.7', 'account-status-changed', payload));
emit('triggered', sent);
emit('received', { name: 'account-status-changed', data: await got.promise });
finish();
