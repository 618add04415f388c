// Laravel Echo with pusher-js, from npm, in Chromium (headless), on the
// example page examples/pusher/index.html: channel auth from a PHP backend
// under php-fpm, events from the `pusher` server SDK. Two users, ann and bob:
// here/joining/leaving, public and private events, whispers (one refused by
// the PHP backend), a forged signature, an unknown key, a dropped socket.
//   node pusher_echo.mjs http://127.0.0.1:GATEWAY_PORT screenshot.png
// Env: ROUTER_HTTP_PORT, APP_ID, APP_KEY, APP_SECRET.
import { chromium } from 'playwright-core';
import Pusher from 'pusher';

const [base, screenshot] = process.argv.slice(2);
const env = (name) => process.env[name] ?? (() => { throw new Error(`${name} not set`); })();
const server = new Pusher({
  appId: env('APP_ID'), key: env('APP_KEY'), secret: env('APP_SECRET'),
  host: '127.0.0.1', port: env('ROUTER_HTTP_PORT'), useTLS: false,
});
const timeout = 5000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});
const sees = (page, what) => page.waitForFunction((w) => window.seen && window.seen.includes(w), what, { timeout })
  .catch(async () => { throw new Error(`never saw "${what}"; saw ${JSON.stringify(await page.evaluate(() => window.seen))}`); });
const never = async (page, what) => {
  await sleep(300);
  const seen = await page.evaluate(() => window.seen);
  if (seen.some((s) => s.includes(what))) throw new Error(`saw "${what}": ${JSON.stringify(seen)}`);
};
const open = async (user, key = env('APP_KEY')) => {
  const page = await browser.newPage();
  page.on('pageerror', (err) => console.log(`${user}: ${err}`));
  await page.goto(`${base}/pusher?user=${user}&key=${key}`);
  return page;
};

try {
  const ann = await open('ann');
  await sees(ann, 'here ann');
  const bob = await open('bob');
  await sees(bob, 'here ann,bob');
  await sees(ann, 'joining bob');
  console.log('ok Echo.join: here and joining');

  await server.trigger('auction.1', 'bid', { amount: 10, by: 'ann' });
  await Promise.all([sees(ann, 'bid 10'), sees(bob, 'bid 10')]);
  await server.trigger('auction.1', 'App\\Events\\BidPlaced', { amount: 11 });
  await Promise.all([sees(ann, 'BidPlaced 11'), sees(bob, 'BidPlaced 11')]);
  console.log('ok Echo.channel(...).listen, with and without the namespace');

  await server.trigger('private-user.ann', 'outbid', { amount: 12 });
  await sees(ann, 'outbid 12');
  await never(bob, 'outbid');
  console.log('ok Echo.private: signed by the PHP backend, for its user alone');

  await ann.evaluate(() => window.whisper({ name: 'ann' }));
  await sees(bob, 'whisper {"name":"ann"}');
  await ann.evaluate(() => window.whisper({ text: 'forbidden' }));
  await ann.waitForFunction(() => window.seen.some((s) => s.startsWith('error') && s.includes('(403)')), null, { timeout });
  await never(bob, 'forbidden');
  console.log('ok whisper/listenForWhisper, and a whisper the PHP backend refused');

  await ann.evaluate(() => Echo.private('forged').error((e) => window.seen.push(`forged ${e.status}`)));
  await sees(ann, 'forged 401');
  console.log('ok a forged signature refused');

  const stranger = await open('eve', 'no-such-key');
  await sees(stranger, 'connection error 4001');
  console.log('ok an unknown app key refused with 4001');

  await ann.screenshot({ path: screenshot });

  // bob's socket drops: pusher-js connects again and joins again; ann sees
  // him leave and come back, and he hears the auction again.
  await bob.evaluate(() => Echo.connector.pusher.connection.connection.transport.socket.close());
  await sees(ann, 'leaving bob');
  await bob.waitForFunction(() => window.seen.filter((s) => s === 'state connected').length >= 2, null, { timeout: 10000 });
  await ann.waitForFunction(() => window.seen.filter((s) => s === 'joining bob').length >= 2, null, { timeout });
  await sleep(200);
  await server.trigger('auction.1', 'bid', { amount: 13, by: 'bob' });
  await sees(bob, 'bid 13');
  console.log('ok a dropped socket: reconnected, joined again, hears again');

  await bob.evaluate(() => Echo.leave('auction.1'));
  await ann.waitForFunction(() => window.seen.filter((s) => s === 'leaving bob').length >= 2, null, { timeout });
  console.log('ok Echo.leave: unsubscribed, and ann sees bob leave');
  console.log('all checks passed');
} finally {
  await browser.close();
}
