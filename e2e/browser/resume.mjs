// The chat page resumes its session by itself after a network drop: ann's
// page reaches the gateway through a relay that this script cuts (a reset,
// no close frame) and holds shut while bob writes; once it lets through
// again, ann's page is back in the same session and shows bob's message.
//   node resume.mjs http://127.0.0.1:9005/ screenshot.png
import { relayTo } from "../../clients/js/test/relay.mjs";
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const timeout = 10000;

const relay = await relayTo(url);
const viaRelay = relay.url;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
try {
  const [ann, bob] = [await browser.newPage(), await browser.newPage()];
  const shows = (page, selector, text) =>
    page.waitForFunction(([s, t]) => document.querySelector(s).textContent.includes(t), [selector, text], { timeout });
  const login = async (page, name) => {
    await shows(page, "#state", "connected");
    await page.fill("#name", name);
    await page.click("#login button");
    await page.waitForFunction(() => !document.querySelector("#text").disabled, null, { timeout });
  };
  await ann.goto(viaRelay);
  await bob.goto(url);
  await login(ann, "ann");
  await login(bob, "bob");
  await shows(ann, "#count", "2");

  relay.cut();
  await shows(ann, "#state", "disconnected");
  await shows(bob, "#online", "ann (away)");
  await bob.fill("#text", "written while ann was away");
  await bob.click("#compose button");
  await shows(bob, "#messages", "written while ann was away");

  relay.open();
  await shows(ann, "#state", "connected (resumed)");
  await shows(ann, "#messages", "written while ann was away");
  await shows(ann, "#messages", "connection restored");
  await shows(bob, "#messages", "ann is back");
  const online = await bob.$$eval("#online li", (items) => items.map((li) => li.textContent).sort());
  if (JSON.stringify(online) !== JSON.stringify(["ann", "bob"])) throw new Error(`online list ${online}`);

  // Still the same session: ann writes without logging in again.
  await ann.fill("#text", "and I am still me");
  await ann.click("#compose button");
  await shows(bob, "#messages", "and I am still me");
  await ann.screenshot({ path: screenshot });
  console.log("ok");
} finally {
  await browser.close();
  relay.stop();
}
