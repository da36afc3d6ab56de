// Echo `join('workspace.7').here().joining().leaving()` with two users: a user's second socket
// does not announce a second `joining`, closing it does not announce `leaving`, and closing the
// user's last socket does.
import { authEndpoint, echo, emit, finish, server, call, signal, until } from './lib.js';

const CHANNEL = 'presence-workspace.7';
const authUrl = await authEndpoint();
const api = server();

/** Connects `name` as `userId`, joins, reports every presence callback; resolves after `here`. */
async function member(name, userId, extra = () => {}) {
  const client = await echo({ authUrl, userId });
  const here = signal();
  const channel = client
    .join('workspace.7')
    .here((users) => {
      emit('here', { client: name, users });
      here.resolve();
    })
    .joining((user) => emit('joining', { client: name, user }))
    .leaving((user) => emit('leaving', { client: name, user }))
    .error((error) => emit('subscription_error', { client: name, error }));
  extra(channel);
  await here.promise;
  return client;
}

/** Publishes `marker` on the channel and waits for alice to get it: every frame the hub queued
 * for her before it (a `joining` or `leaving` it should or should not have sent) has arrived by
 * then. */
async function barrier(marker, waiter) {
  const arrived = waiter(marker);
  const sent = await call(api.trigger(CHANNEL, 'marker', { marker }));
  if (sent.status !== 200) emit('trigger_failed', sent);
  await arrived;
  emit('marker', { marker });
}

const markers = new Map();
const waitMarker = (marker) => {
  const s = signal();
  markers.set(marker, s.resolve);
  return s.promise;
};
const left = signal();
await member('alice', 1, (channel) => {
  channel.listen('.marker', (data) => markers.get(data.marker)?.());
  channel.leaving(() => left.resolve());
});

const bobJoined = await member('bob', 2);
await barrier('after-bob', waitMarker);
const bobAgain = await member('bob-second-socket', 2);
await barrier('after-bob-second-socket', waitMarker);

// bob's second socket leaves: no `leaving`, he is still there.
bobAgain.disconnect();
await until(async () => {
  const r = await call(api.get({ path: `/channels/${CHANNEL}`, params: { info: 'subscription_count,user_count' } }));
  return r.body?.subscription_count === 2 ? r : undefined;
}).then((r) => emit('after_second_socket_left', r));
await barrier('after-bob-second-socket-left', waitMarker);

// bob's last socket leaves: `leaving` fires for him.
bobJoined.disconnect();
await left.promise;
finish();
