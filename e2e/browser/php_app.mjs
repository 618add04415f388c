// The PHP auction app (examples/php/auction/) in Chromium (headless): two
// users; presence (each sees the other come and go), history (bob, late,
// sees ann's bid), subscribe (bob may watch lot 2, not lot 9), bids live.
//   node php_app.mjs http://127.0.0.1:PORT/auction screenshot.png
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const timeout = 5000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
const sees = (page, what) => page.waitForFunction((w) => window.seen && window.seen.includes(w), what, { timeout })
  .catch(async () => { throw new Error(`never saw "${what}"; saw ${JSON.stringify(await page.evaluate(() => window.seen))}`); });
const enter = async (name) => {
  const page = await browser.newPage();
  page.on("pageerror", (err) => console.log(`${name}: ${err}`));
  await page.goto(url);
  await sees(page, "open");
  await page.fill("#name", name);
  await page.click("#login button");
  await sees(page, `welcome ${name}`);
  return page;
};
const bid = async (page, amount) => {
  await page.fill("#amount", String(amount));
  await page.click("#bid button");
};
try {
  const ann = await enter("ann");
  await sees(ann, "people ann");
  await bid(ann, 10);
  await sees(ann, "bid ann 10");
  console.log("ok ann is in the room and bids");

  const bob = await enter("bob");
  await sees(bob, "bid ann 10");
  await sees(bob, "people ann,bob");
  await sees(ann, "people ann,bob");
  console.log("ok bob, late, gets the room's history and its members; ann sees him come");

  await bob.click('[data-lot="lot-2"]');
  await sees(bob, "watching lot-2");
  await bob.click('[data-lot="lot-9"]');
  await sees(bob, "refused lot-9 403");
  console.log("ok a subscribe the PHP script allows, and one it refuses");

  await bid(bob, 12);
  await sees(ann, "bid bob 12");
  await ann.screenshot({ path: screenshot });
  await bob.close({ runBeforeUnload: true });
  await sees(ann, "people ann");
  console.log("ok bob's bid live, and ann sees him leave");
  console.log("all checks passed");
} finally {
  await browser.close();
}
