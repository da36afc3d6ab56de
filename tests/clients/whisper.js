// Echo `whisper('typing', …)` on a private channel reaches the other subscriber's
// `listenForWhisper('typing')` and never the sender; on a presence channel the receiver also gets
// the sender's `user_id` (pusher-js passes it as the callback's second argument).
import { authEndpoint, echo, emit, finish, subscribed, signal } from './lib.js';

const authUrl = await authEndpoint();
const alice = await echo({ authUrl, userId: 1 });
const bob = await echo({ authUrl, userId: 2 });

/** Subscribes `client` to `channel` (an Echo channel getter) and reports whispers it receives. */
async function listener(name, channel) {
  const got = signal();
  channel.listenForWhisper('typing', (data, metadata) => {
    emit('whisper', { client: name, channel: channel.name, data, metadata: metadata ?? null });
    got.resolve();
  });
  channel.error((error) => emit('subscription_error', { client: name, channel: channel.name, error }));
  await subscribed(channel);
  return { got: got.promise }; // wrapped: an async function would wait for a returned promise
}

// Private channel: alice whispers, bob gets it; then bob answers, and alice's first whisper must
// be bob's (her own would have been queued for her before bob even got hers).
const alicePrivate = alice.private('chat.5');
const bobPrivate = bob.private('chat.5');
const [{ got: aliceGot }, { got: bobGot }] = await Promise.all([listener('alice', alicePrivate), listener('bob', bobPrivate)]);
alicePrivate.whisper('typing', { from: 'alice', typing: true });
await bobGot;
bobPrivate.whisper('typing', { from: 'bob', typing: true });
await aliceGot;

// Presence channel: bob's whisper reaches alice with his user id.
const alicePresence = alice.join('chat-room.5');
const bobPresence = bob.join('chat-room.5');
const [{ got: aliceGotPresence }] = await Promise.all([
  listener('alice', alicePresence),
  listener('bob', bobPresence),
]);
bobPresence.whisper('typing', { from: 'bob', typing: false });
await aliceGotPresence;
finish();
