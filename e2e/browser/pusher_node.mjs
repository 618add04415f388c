// pusher-js (in Node) and the `pusher` server SDK, both from npm, against
// a gateway and a router serving one Pusher app. The channel and user
// signatures come from a real HTTP endpoint that uses the SDK's own
// authorizeChannel and authenticateUser; webhooks are checked with its own
// check. Env: GATEWAY_PORT, ROUTER_HTTP_PORT, WEBHOOK_PORT, APP_ID, APP_KEY,
// APP_SECRET. Prints each check; exits 1 on the first miss.
import http from 'node:http';
import crypto from 'node:crypto';
import PusherJS from 'pusher-js';
import Pusher from 'pusher';

const env = (name) => process.env[name] ?? (() => { throw new Error(`${name} not set`); })();
const [gatewayPort, routerPort] = [Number(env('GATEWAY_PORT')), Number(env('ROUTER_HTTP_PORT'))];
const [appId, key, secret] = [env('APP_ID'), env('APP_KEY'), env('APP_SECRET')];
const server = new Pusher({ appId, key, secret, host: '127.0.0.1', port: String(routerPort), useTLS: false });
const wrongSecret = new Pusher({ appId, key, secret: 'not-the-secret', host: '127.0.0.1', port: String(routerPort), useTLS: false });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function check(ok, what) {
  if (!ok) { console.log(`FAIL ${what}`); process.exit(1); }
  console.log(`ok ${what}`);
}
function waitFor(what, register, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    register((value) => { clearTimeout(timer); resolve(value); });
  });
}

// The app's own auth endpoint: users by ?user=, and private-forged-*
// signed with the wrong secret, as an attacker would.
const users = { ann: { name: 'Ann' }, bob: { name: 'Bob' } };
const auth = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const url = new URL(req.url, 'http://x');
    const form = new URLSearchParams(body);
    const [socket, channel, user] = [form.get('socket_id'), form.get('channel_name'), url.searchParams.get('user')];
    let answer;
    if (url.pathname === '/user-auth') {
      answer = server.authenticateUser(socket, { id: user, name: users[user].name });
    } else if (channel.startsWith('presence-')) {
      answer = server.authorizeChannel(socket, channel, { user_id: user, user_info: users[user] });
    } else {
      answer = (channel.startsWith('private-forged') ? wrongSecret : server).authorizeChannel(socket, channel);
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer));
  });
});
await new Promise((r) => auth.listen(0, '127.0.0.1', r));
const authUrl = `http://127.0.0.1:${auth.address().port}`;

// The app's webhook receiver: each batch checked with the SDK's own
// webhook signature check, and a tampered copy of it refused by it.
const hooks = [];
let badHooks = 0;
const receiver = http.createServer((req, res) => {
  let rawBody = '';
  req.on('data', (c) => { rawBody += c; });
  req.on('end', () => {
    const webhook = server.webhook({ headers: req.headers, rawBody });
    const tampered = server.webhook({ headers: req.headers, rawBody: rawBody.replace('"events"', '"events" ') });
    if (webhook.isValid() && !tampered.isValid()) hooks.push(...webhook.getEvents());
    else badHooks += 1;
    res.writeHead(200);
    res.end();
  });
});
await new Promise((r) => receiver.listen(Number(env('WEBHOOK_PORT')), '127.0.0.1', r));
const hooked = (what, match) => waitFor(`webhook ${what}`, (done) => {
  const t = setInterval(() => { if (hooks.some(match)) { clearInterval(t); done(); } }, 20);
});

function client(user, appKey = key) {
  return new PusherJS(appKey, {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: gatewayPort, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: { endpoint: `${authUrl}/auth?user=${user}`, transport: 'ajax' },
    userAuthentication: { endpoint: `${authUrl}/user-auth?user=${user}`, transport: 'ajax' },
  });
}
const connected = (c) => waitFor('connected', (done) => c.connection.bind('connected', () => done(c.connection.socket_id)));
const subscribed = (c, name) => {
  const channel = c.subscribe(name);
  return waitFor(`subscribed to ${name}`, (done) => {
    channel.bind('pusher:subscription_succeeded', (members) => done({ channel, members }));
    channel.bind('pusher:subscription_error', (err) => done({ channel, error: err }));
  });
};
const next = (channel, event, ms) => waitFor(`${event} on ${channel.name}`, (done) => channel.bind(event, done), ms);

// Connect: a socket id in Pusher's form.
const ann = client('ann');
const bob = client('bob');
const [annSocket, bobSocket] = await Promise.all([connected(ann), connected(bob)]);
check(/^\d+\.\d+$/.test(annSocket) && annSocket !== bobSocket, `socket ids ${annSocket} ${bobSocket}`);

// Public channels: trigger to one, to many, and a batch.
const news = (await subscribed(ann, 'news')).channel;
const sport = (await subscribed(ann, 'sport')).channel;
let got = next(news, 'bid');
await server.trigger('news', 'bid', { amount: 5 });
check((await got).amount === 5, 'trigger to one channel');
got = Promise.all([next(news, 'multi'), next(sport, 'multi')]);
await server.trigger(['news', 'sport'], 'multi', { n: 2 });
check((await got).every((d) => d.n === 2), 'trigger to two channels');
got = Promise.all([next(news, 'b1'), next(sport, 'b2')]);
await server.triggerBatch([{ channel: 'news', name: 'b1', data: { i: 1 } }, { channel: 'sport', name: 'b2', data: { i: 2 } }]);
check((await got).map((d) => d.i).join() === '1,2', 'triggerBatch');

// Cache channels: the last event for a client that joins later, or
// pusher:cache_miss (and a webhook) when there is none.
await server.trigger('cache-price', 'price', { p: 1 });
await server.trigger('cache-price', 'price', { p: 2 });
const price = ann.subscribe('cache-price');
check((await next(price, 'price')).p === 2, 'a cache channel gives its last event at join');
const empty = ann.subscribe('cache-empty');
await next(empty, 'pusher:cache_miss');
check(true, 'an empty cache channel: pusher:cache_miss');

// Excluding the sender's socket.
const bobNews = (await subscribed(bob, 'news')).channel;
let annHeard = false;
news.bind('excluded', () => { annHeard = true; });
got = next(bobNews, 'excluded');
await server.trigger('news', 'excluded', {}, { socket_id: annSocket });
await got;
await sleep(200);
check(!annHeard, 'socket_id excludes its own client');

// Private channels: a good signature joins, a forged one is refused.
const privateA = await subscribed(ann, 'private-a');
check(!privateA.error, 'private channel joined with the app\'s signature');
const forged = await subscribed(ann, 'private-forged');
check(forged.error && forged.error.status === 401, `forged signature refused: ${JSON.stringify(forged.error)}`);

// Presence: members, member_added, member_removed.
const annRoom = await subscribed(ann, 'presence-room');
check(annRoom.members.count === 1 && annRoom.members.me.id === 'ann', 'presence: ann alone, as herself');
const added = next(annRoom.channel, 'pusher:member_added');
const bobRoom = await subscribed(bob, 'presence-room');
check(bobRoom.members.count === 2 && bobRoom.members.get('ann').info.name === 'Ann', 'presence: bob sees ann with her info');
check((await added).info.name === 'Bob', 'presence: ann hears bob join');

// ann's second connection is the same user: no one hears her join or
// leave again (Pusher announces a user's first and last connection).
let annAgain = false;
bobRoom.channel.bind('pusher:member_added', () => { annAgain = true; });
bobRoom.channel.bind('pusher:member_removed', () => { annAgain = true; });
const annTab = client('ann');
await connected(annTab);
const annTabRoom = await subscribed(annTab, 'presence-room');
check(annTabRoom.members.count === 2, 'a second tab of ann sees two users, ann and bob');
annTab.unsubscribe('presence-room');
annTab.disconnect();
await sleep(300);
check(!annAgain && bobRoom.members.count === 2 && bobRoom.members.get('ann'), 'bob heard nothing of ann\'s second tab, and still sees her');

// The HTTP API's reads.
const channels = await (await server.get({ path: '/channels', params: { info: 'subscription_count' } })).json();
check(channels.channels.news.subscription_count === 2, `GET /channels: ${JSON.stringify(channels)}`);
const presence = await (await server.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json();
check(presence.channels['presence-room'].user_count === 2, `GET /channels presence: ${JSON.stringify(presence)}`);
const one = await (await server.get({ path: '/channels/news', params: { info: 'subscription_count' } })).json();
check(one.occupied === true && one.subscription_count === 2, `GET /channels/news: ${JSON.stringify(one)}`);
const roomUsers = await (await server.get({ path: '/channels/presence-room/users' })).json();
check(roomUsers.users.map((u) => u.id).sort().join() === 'ann,bob', `GET users: ${JSON.stringify(roomUsers)}`);

// Client events, relayed to the others only.
let annWhisper = false;
annRoom.channel.bind('client-typing', () => { annWhisper = true; });
got = next(bobRoom.channel, 'client-typing');
annRoom.channel.trigger('client-typing', { who: 'ann' });
const whisper = await got;
check(whisper.who === 'ann', 'client event relayed');
await sleep(200);
check(!annWhisper, 'client event not echoed to its sender');

// An attacker's client events: to a private channel it never joined, and
// to a public one. Each gets pusher:error; no member hears them.
const mallory = client('ann');
await connected(mallory);
const errors = [];
mallory.connection.bind('message', (m) => { if (m.event === 'pusher:error') errors.push(m.data); });
let leaked = false;
privateA.channel.bind('client-evil', () => { leaked = true; });
news.bind('client-evil', () => { leaked = true; });
mallory.send_event('client-evil', { x: 1 }, 'private-a');
mallory.send_event('client-evil', { x: 1 }, 'news');
await waitFor('two refusals', (done) => { const t = setInterval(() => { if (errors.length >= 2) { clearInterval(t); done(); } }, 20); });
await sleep(200);
check(!leaked, `client events refused where the sender is no member, or the channel public: ${JSON.stringify(errors)}`);
mallory.disconnect();

const removed = next(annRoom.channel, 'pusher:member_removed');
bob.unsubscribe('presence-room');
check((await removed).id === 'bob', 'presence: ann hears bob leave');

// Signing in: a message to the user, then the server ends its connections.
const signedIn = waitFor('signin', (done) => bob.connection.bind('message', (m) => { if (m.event === 'pusher:signin_success') done(); }));
bob.signin();
await signedIn;
const toBob = waitFor('a message to bob', (done) => bob.user.bind('note', done));
await sleep(300);
await server.sendToUser('bob', 'note', { hi: 'bob' });
check((await toBob).hi === 'bob', 'sendToUser reaches the signed-in user');
const dropped = waitFor('bob dropped', (done) => bob.connection.bind('state_change', (s) => { if (s.previous === 'connected') done(s.current); }));
await server.terminateUserConnections('bob');
check(await dropped === 'disconnected', 'terminateUserConnections closed bob, and pusher-js does not retry (4009)');

// A socket that drops (no close frame): pusher-js connects again with a
// new socket, joins its channels again, and hears them.
const annBack = waitFor('ann back', (done) => ann.connection.bind('state_change', (s) => {
  if (s.current === 'connected' && ann.connection.socket_id !== annSocket) done(ann.connection.socket_id);
}), 15000);
const socket = ann.connection.connection.transport.socket;
(socket._stream ?? socket._socket ?? { destroy: () => socket.close() }).destroy();
check((await annBack) !== annSocket, 'ann connected again with a new socket id');
await waitFor('news again', (done) => { if (news.subscribed) done(); else news.bind('pusher:subscription_succeeded', done); });
await sleep(200);
got = next(news, 'after');
await server.trigger('news', 'after', { ok: true });
check((await got).ok === true, 'the reconnected client hears its channel again');

// An unknown key is refused with Pusher's code, and not retried.
const stranger = client('ann', 'no-such-key');
const error = await waitFor('an error', (done) => stranger.connection.bind('error', done));
check(error.error?.data?.code === 4001, `unknown key: ${JSON.stringify(error)}`);
await waitFor('failed', (done) => { if (stranger.connection.state === 'disconnected') done(); else stranger.connection.bind('disconnected', done); });
stranger.disconnect();

// Forged API calls, each refused with Pusher's status.
async function call(query, body) {
  const res = await fetch(`http://127.0.0.1:${routerPort}/apps/${appId}/events?${query}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body,
  });
  return res.status;
}
function signed(body, { stamp = Math.floor(Date.now() / 1000), md5 = crypto.createHash('md5').update(body).digest('hex'), key: k = key, secret: s = secret } = {}) {
  const query = `auth_key=${k}&auth_timestamp=${stamp}&auth_version=1.0&body_md5=${md5}`;
  const sig = crypto.createHmac('sha256', s).update(`POST\n/apps/${appId}/events\n${query}`).digest('hex');
  return `${query}&auth_signature=${sig}`;
}
const body = JSON.stringify({ name: 'x', channel: 'news', data: '{}' });
check(await call(signed(body), body) === 200, 'a call signed by hand passes');
check(await call(signed(body, { secret: 'wrong' }), body) === 401, 'a wrong signature: 401');
check(await call(signed(body, { stamp: Math.floor(Date.now() / 1000) - 601 }), body) === 401, 'an old timestamp: 401');
check(await call(signed(body, { md5: crypto.createHash('md5').update('other').digest('hex') }), body) === 401, 'a wrong body_md5: 401');
check(await call(signed(body), body.replace('news', 'sport')) === 401, 'a changed body: 401');

// The webhooks, each as the SDK reads it.
await hooked('cache_miss', (e) => e.name === 'cache_miss' && e.channel === 'cache-empty');
await hooked('channel_occupied news', (e) => e.name === 'channel_occupied' && e.channel === 'news');
await hooked('member_added bob', (e) => e.name === 'member_added' && e.channel === 'presence-room' && e.user_id === 'bob');
await hooked('client_event', (e) => e.name === 'client_event' && e.event === 'client-typing' && JSON.parse(e.data).who === 'ann' && e.user_id === 'ann' && e.socket_id === annSocket);
await hooked('member_removed bob', (e) => e.name === 'member_removed' && e.user_id === 'bob');
ann.disconnect();
bob.disconnect();
await hooked('channel_vacated news', (e) => e.name === 'channel_vacated' && e.channel === 'news');
check(badHooks === 0 && hooks.length > 0, `${hooks.length} webhook events, each signed as the SDK checks`);
check(!hooks.some((e) => e.name === 'client_event' && e.event === 'client-evil'), 'a refused client event is no webhook');
auth.close();
receiver.close();
console.log('all checks passed');
process.exit(0);
