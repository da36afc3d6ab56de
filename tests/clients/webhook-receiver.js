// An app webhook receiver written the way a Laravel app checks Pusher webhooks, with the `pusher`
// server library's webhook() helper (X-Pusher-Key must be the app key, X-Pusher-Signature the hex
// HMAC-SHA256 of the raw body with the app secret, Content-Type application/json).
//
// Environment: KEY, SECRET, APP_ID; FAIL_FIRST=n answers the first n valid requests 503 (the app
// restarting); PORT (default: any free one); DEADLINE_MS (default 60000) ends it. It also ends when its stdin closes.
// Prints {"event":"listening","port":…} once, then one line per request:
// {"event":"webhook","path","valid","status","delivery","attempt","authorization","body"}.
import http from 'node:http';
import Pusher from 'pusher';

const pusher = new Pusher({
  appId: process.env.APP_ID,
  key: process.env.KEY,
  secret: process.env.SECRET,
  host: '127.0.0.1',
});
let failFirst = Number(process.env.FAIL_FIRST || 0);

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const webhook = pusher.webhook({ headers: req.headers, rawBody });
    const valid = webhook.isValid();
    let status = valid ? 200 : 401;
    if (valid && failFirst > 0) {
      failFirst -= 1;
      status = 503;
    }
    emit('webhook', {
      path: req.url,
      valid,
      status,
      delivery: req.headers['x-fleetgate-delivery-id'] || null,
      attempt: Number(req.headers['x-fleetgate-attempt'] || 0),
      authorization: req.headers.authorization || null,
      body: valid ? webhook.getData() : rawBody,
    });
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: status === 200 }));
  });
});

server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => emit('listening', { port: server.address().port }));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(3), Number(process.env.DEADLINE_MS || 60000));
