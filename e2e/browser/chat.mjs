// Two browser pages chat through the real stack: log in, channel 0 and
// channel 2, each sees the other's message and the online list.
//   node chat.mjs http://127.0.0.1:9005/ screenshot.png
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const timeout = 5000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
try {
  const [ann, bob] = [await browser.newPage(), await browser.newPage()];
  for (const page of [ann, bob]) {
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
  console.log("ok");
} finally {
  await browser.close();
}
