// Two browser pages chat through the real stack: log in, channel 0 and
// channel 2, each sees the other's message and the online list; one
// leaves, and the other sees it. With NO_WEBSOCKET=1 the pages have no
// WebSocket at all, and fk.js falls back to Server-Sent Events.
//   node chat.mjs http://127.0.0.1:9005/ screenshot.png
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const timeout = 5000;
const noWebSocket = process.env.NO_WEBSOCKET === "1";
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
try {
  const [ann, bob] = [await browser.newPage(), await browser.newPage()];
  const [sockets, streams] = [[], []];
  for (const page of [ann, bob]) {
    if (noWebSocket) await page.addInitScript(() => { delete window.WebSocket; });
    page.on("websocket", (ws) => sockets.push(ws.url()));
    page.on("request", (r) => { if (r.headers().accept === "text/event-stream") streams.push(r.url()); });
    await page.goto(url);
    await page.waitForFunction(() => document.querySelector("#state").textContent === "connected", null, { timeout });
  }
  const login = async (page, name) => {
    await page.fill("#name", name);
    await page.click("#login button");
    await page.waitForFunction(() => !document.querySelector("#text").disabled, null, { timeout });
  };
  await login(ann, "ann");
  await login(bob, "bob");
  for (const page of [ann, bob]) {
    await page.waitForFunction(() => document.querySelector("#count").textContent === "2", null, { timeout });
    const online = await page.$$eval("#online li", (items) => items.map((li) => li.textContent).sort());
    if (JSON.stringify(online) !== JSON.stringify(["ann", "bob"])) throw new Error(`online list ${online}`);
  }
  const say = async (page, text) => {
    await page.fill("#text", text);
    await page.click("#compose button");
  };
  const sees = (page, text) =>
    page.waitForFunction((t) => document.querySelector("#messages").textContent.includes(t), text, { timeout });

  await say(ann, "hello everyone <3");
  await sees(bob, "hello everyone <3");

  for (const page of [ann, bob]) await page.click('[data-channel="2"]');
  await new Promise((r) => setTimeout(r, 200));
  await say(bob, "just us in two");
  await sees(ann, "just us in two");
  const inTwo = await ann.$eval("#messages", (m) => m.textContent);
  if (inTwo.includes("hello everyone")) throw new Error("channel 0's message shown in channel 2");

  await ann.screenshot({ path: screenshot });

  await bob.close({ runBeforeUnload: true });
  await ann.click('[data-channel="0"]');
  await sees(ann, "bob left");
  await ann.waitForFunction(() => document.querySelector("#count").textContent === "1", null, { timeout });
  const transports = `${sockets.length} WebSocket(s), ${streams.length} event stream(s)`;
  if (noWebSocket ? sockets.length > 0 || streams.length < 2 : sockets.length < 2) throw new Error(transports);
  console.log(`ok: ${transports}`);
} finally {
  await browser.close();
}
