// The router's operator page in Chromium (e2e/tests/browser.rs starts a
// router with --admin-token, two gateways and the echo backend):
//   ADMIN_TOKEN=... ECHO_PID=... ROUTER_HTTP=http://... GATEWAYS="ws://a/ ws://b/" node admin.mjs http://127.0.0.1:PORT/admin/ screenshot.png
// Three clients connect (two to one gateway, one to the other); the page
// asks for the operator's token, and once logged in counts them; a session is kicked from
// the page, and its client is closed with 4000; the backend is killed, and
// the page shows it ejected. The page loads nothing from anywhere else.
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const { ADMIN_TOKEN, ECHO_PID, GATEWAYS, ROUTER_HTTP } = process.env;
const gateways = GATEWAYS.split(" ");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const fail = async (message) => {
  console.error(message);
  await browser.close();
  process.exit(1);
};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // The clients, in a page of their own (the operator's page allows no socket but its router).
  const clients = await context.newPage();
  const ids = await clients.evaluate(async (urls) => {
    window.sockets = [];
    const open = (url) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onmessage = (e) => { if (!ws.id) { ws.id = e.data; resolve(e.data); } };
      ws.onclose = (e) => { ws.closed = e.code; };
      ws.onerror = () => reject(new Error(`no connection to ${url}`));
      window.sockets.push(ws);
    });
    return Promise.all([open(urls[0]), open(urls[0]), open(urls[1])]);
  }, gateways);

  // A backend's calls, from here (a page of another origin may not make them).
  const join = (channel, sessions) => fetch(`${ROUTER_HTTP}/v1/join`,
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ channel, sessions }) });
  await join("lobby", ids);
  await join("presence-table-7", ids.slice(1));

  const admin = await context.newPage();
  const origin = new URL(url).origin;
  const elsewhere = [];
  admin.on("request", (request) => { if (!request.url().startsWith(origin)) elsewhere.push(request.url()); });
  admin.on("dialog", (dialog) => dialog.accept());
  await admin.goto(url);
  await admin.waitForSelector("#login.shown", { timeout: 10000 });
  await admin.fill("#login-token", "not the token");
  await admin.click("#login button");
  await admin.waitForFunction(() => document.getElementById("login-error").textContent !== "", null, { timeout: 5000 });
  await admin.fill("#login-token", ADMIN_TOKEN);
  await admin.click("#login button");
  await admin.waitForSelector("#login:not(.shown)", { state: "attached", timeout: 10000 });
  const cookies = await context.cookies();
  if (!cookies.some((c) => c.name === "fk_admin" && c.httpOnly && c.sameSite === "Strict")) await fail(`no strict session cookie: ${JSON.stringify(cookies)}`);
  await admin.waitForFunction(() => document.getElementById("sessions").textContent === "3", null, { timeout: 10000 });
  await admin.waitForFunction(() => document.querySelectorAll("#gateways tr").length === 2, null, { timeout: 10000 });
  await admin.waitForFunction(() => document.getElementById("channels").textContent.includes("lobby3"), null, { timeout: 10000 });
  await admin.fill("#channel-search", "presence-");
  await admin.waitForFunction(() => document.getElementById("channels").textContent === "presence-table-72", null, { timeout: 5000 });
  await admin.fill("#channel-search", "");
  const healthy = await admin.textContent("#problems");
  if (!healthy.includes("nothing wrong")) await fail(`problems on a healthy cluster: ${healthy}`);

  // A session looked up and kicked from the page.
  await admin.fill("#lookup-id", ids[0]);
  await admin.click("#lookup button");
  await admin.waitForSelector(`.session[data-session="${ids[0]}"]`);
  const described = await admin.textContent(`.session[data-session="${ids[0]}"]`);
  if (!/age \d+ s · client 127\.0\.0\.1:\d+/.test(described)) await fail(`no age and client in the lookup: ${described}`);
  await admin.click(`.session[data-session="${ids[0]}"] button`);
  const code = await clients.waitForFunction(() => window.sockets[0].closed, null, { timeout: 10000 });
  if ((await code.jsonValue()) !== 4000) await fail(`the kicked client closed with ${await code.jsonValue()}, not 4000`);
  await admin.waitForFunction(() => document.getElementById("sessions").textContent === "2", null, { timeout: 10000 });
  await admin.fill("#lookup-id", "");

  // The backend dies; the clients' messages fail, and the gateways eject it.
  process.kill(Number(ECHO_PID), "SIGKILL");
  await clients.evaluate(() => { for (let i = 0; i < 3; i++) for (const ws of window.sockets) ws.send(`after the kill ${i}`); });
  const started = Date.now();
  await admin.waitForFunction(() => document.getElementById("problem-list").textContent.includes("ejected"), null, { timeout: 15000 });
  const ejectedAfter = Date.now() - started;
  await admin.waitForSelector("#gateways .badge.bad", { timeout: 5000 });
  console.log(`backend shown ejected after ${ejectedAfter} ms`);

  await admin.waitForTimeout(2500);
  await admin.screenshot({ path: screenshot, fullPage: true });
  if (elsewhere.length) await fail(`the page loaded from elsewhere: ${elsewhere.join(", ")}`);
  const open = await clients.evaluate(() => window.sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length);
  if (open !== 2) await fail(`${open} clients open, expected the two not kicked`);
  console.log("ok");
} catch (err) {
  await fail(err.stack);
}
await browser.close();
