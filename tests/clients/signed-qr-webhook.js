// The QR flow through the edge: an Echo client listens on `private-workspace.7` for
// `.qr-code-generated`; then a Node instance's signed `qr_code_generated` webhook (signed exactly as
// the Node service signs: hex HMAC-SHA256 over X-Timestamp ++ body) goes to the edge listener
// (EDGE_PORT, HMAC_SECRET). Reports the webhook's answer and the event the browser received.
import crypto from 'node:crypto';
import http from 'node:http';
import { authEndpoint, echo, emit, finish, listenPrivate } from './lib.js';

const edgePort = Number(process.env.EDGE_PORT);
const secret = process.env.HMAC_SECRET;
const session = 'webjs_7_1700000000_qrqr1234';
const qr = 'data:image/png;base64,iVBORw0KGgo=';

const client = await echo({ authUrl: await authEndpoint(), userId: 1 });
const { received } = await listenPrivate(client, 'workspace.7', '.qr-code-generated');

const body = JSON.stringify({
  event: 'qr_code_generated',
  data: { workspace_id: 7, session_id: session, qr_code: qr, expires_in: 60, qr_count: 1 },
});
const answer = await post(body);
emit('webhook', { ...answer, sha256: crypto.createHash('sha256').update(body).digest('hex') });
const data = await received;
emit('received', { data, workspace_id_type: typeof data.workspace_id });
finish();

function post(body) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = crypto.createHmac('sha256', secret).update(timestamp + body).digest('hex');
  const headers = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-timestamp': timestamp,
    'x-hmac-signature': signature,
    'x-instance-url': 'http://localhost:3001',
  };
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port: edgePort, method: 'POST', path: '/api/whatsapp/webhooks/webjs', headers },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
      },
    );
    req.on('error', (err) => resolve({ status: 0, error: String(err) }));
    req.end(body);
  });
}
