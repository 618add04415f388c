// Two browser pages on the queue page, capacity 1: the first is let in,
// the second sees one in front of it, and is let in live when the first
// goes offline.
//   OPERATOR_TOKEN=... node queue.mjs http://127.0.0.1:9005/queue screenshot.png
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const timeout = 5000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
const statusIs = (page, text) =>
  page.waitForFunction((t) => document.querySelector("#status").textContent.includes(t), text, { timeout });

async function player(name) {
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill("#username", name);
  await page.fill("#password", `${name}-secret`);
  await page.click("#register");
  await statusIs(page, "Registered");
  const uid = (await page.textContent("#status")).match(/uid (\d+)/)[1];
  await page.click("#form button[type=submit]");
  return { page, uid };
}

try {
  const ann = await player("ann");
  await statusIs(ann.page, "You are in");
  const bob = await player("bob");
  await statusIs(bob.page, "In line: 1 in front of you");
  // The game server, not the page, says ann left: an operator's call.
  const offline = await fetch(new URL(`/api/v1/game/offline/${ann.uid}`, url), {
    method: "POST",
    headers: { Authorization: `Bearer ${process.env.OPERATOR_TOKEN}` },
  });
  if (!offline.ok) throw new Error(`offline: ${offline.status}`);
  await statusIs(bob.page, "You are in");
  await bob.page.screenshot({ path: screenshot });
  console.log("ok");
} finally {
  await browser.close();
}
