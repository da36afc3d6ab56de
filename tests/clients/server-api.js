// The `pusher` server library against the hub: `triggerBatch` (2 events) reaches the Echo
// listeners, `trigger` with `socket_id` skips that socket (Laravel's toOthers()), and `get` on
// /channels (filter_by_prefix + info=user_count), /channels/{name} and /channels/{name}/users
// reports what the Echo clients created.
import { authEndpoint, echo, emit, finish, server, call, subscribed, signal } from './lib.js';

const api = server();
const authUrl = await authEndpoint();

/** An Echo client for `userId` in presence-workspace.7; resolves when `here` fired. */
async function present(userId) {
  const client = await echo({ authUrl, userId });
  const here = signal();
  const channel = client.join('workspace.7').here(() => here.resolve());
  await here.promise;
  return { client, channel };
}

const alice = await present(1);
await present(2);
await present(2); // bob's second socket: one more subscription, not one more user

// Two public listeners.
const events = new Map(); // "client event" -> resolve
const wait = (key) => {
  const s = signal();
  events.set(key, s.resolve);
  return s.promise;
};
const publicListener = async (name) => {
  const client = await echo();
  const channel = client.channel('workspace.7');
  for (const event of ['batch-one', 'to-others', 'after']) {
    channel.listen(`.${event}`, (data) => {
      emit('received', { client: name, name: event, data });
      events.get(`${name} ${event}`)?.();
    });
  }
  await subscribed(channel);
  return client;
};
const carol = await publicListener('carol');
await publicListener('dave');
alice.channel.listen('.batch-two', (data) => {
  emit('received', { client: 'alice', name: 'batch-two', data });
  events.get('alice batch-two')?.();
});

const batchGot = [wait('carol batch-one'), wait('dave batch-one'), wait('alice batch-two')];
const batch = await call(
  api.triggerBatch([
    { channel: 'workspace.7', name: 'batch-one', data: { n: 1, workspace_id: 7 } },
    { channel: 'presence-workspace.7', name: 'batch-two', data: { n: 2 } },
  ]),
);
emit('trigger_batch', batch);
await Promise.all(batchGot);

// toOthers(): carol's socket is excluded. Then `after` to both: carol's `to-others`, had it been
// sent, would have arrived before it.
const othersGot = wait('dave to-others');
const others = await call(api.trigger('workspace.7', 'to-others', { n: 3 }, { socket_id: carol.socketId() }));
emit('trigger_to_others', { ...others, excluded: carol.socketId() });
await othersGot;
const afterGot = [wait('carol after'), wait('dave after')];
emit('trigger_after', await call(api.trigger('workspace.7', 'after', { n: 4 })));
await Promise.all(afterGot);

emit('get_presence_channels', await call(api.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })));
emit('get_channels', await call(api.get({ path: '/channels' })));
emit(
  'get_channel',
  await call(api.get({ path: '/channels/presence-workspace.7', params: { info: 'user_count,subscription_count' } })),
);
emit('get_users', await call(api.get({ path: '/channels/presence-workspace.7/users' })));
finish();
