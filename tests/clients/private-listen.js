// Echo `private('workspace.7').listen('.qr-code-generated')`, authorised by a Laravel-style
// /broadcasting/auth that signs with the `pusher` library's authorizeChannel, receives the event
// the library triggers; `workspace_id` arrives as a JSON number.
import { authEndpoint, call, echo, emit, finish, listenPrivate, server } from './lib.js';

const authUrl = await authEndpoint();
const client = await echo({ authUrl, userId: 1 });
emit('connected', { socket_id: client.socketId() });
const { received } = await listenPrivate(client, 'workspace.7', '.qr-code-generated');
const session = 'webjs_7_1700000000_ab12';
const payload = {
  qr_code_base64: 'data:image/png;base64,iVBORw0KGgo=',
  expires_in_seconds: 300,
  workspace_id: 7,
  account_id: session,
  session_id: session,
  timestamp: '2024-01-01T00:00:00.000Z',
};
const sent = await call(server().trigger('private-workspace.7', 'qr-code-generated', payload));
emit('triggered', sent);
const data = await received;
emit('received', { name: 'qr-code-generated', data, workspace_id_type: typeof data.workspace_id });
finish();
