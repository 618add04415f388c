// fk.js against real gateways: e2e/tests/js_client.rs starts a router, the
// echo backend and three gateways, then runs
//   node --experimental-websocket --test clients/js/test/
// with FK_A and FK_B (one cluster: the same --resume-secret), FK_SHORT (a
// gateway whose sessions wait 300 ms for their client) and ROUTER_HTTP.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FkClient } from "../fk.js";
import { relayTo } from "./relay.mjs";

const { FK_A, FK_B, FK_SHORT, ROUTER_HTTP } = process.env;
const TIMEOUT = 10000;
// The router's API takes JSON only (no browser form can send it).
const JSON_TYPE = { "Content-Type": "application/json" };

const EVENTS = ["open", "resumed", "lost", "message", "close", "fallback", "presence"];

/** Every event of a client, in order, from its start: `take(type)` waits
 * for the next one of `type` not taken yet (events that come in one burst
 * are all kept). */
function watch(client) {
  const seen = [];
  let wake = () => {};
  for (const type of EVENTS) client.on(type, (detail) => { seen.push({ type, detail }); wake(); });
  return {
    seen,
    async take(type) {
      const deadline = Date.now() + TIMEOUT;
      for (;;) {
        const found = seen.find((e) => e.type === type && !e.taken);
        if (found) { found.taken = true; return found.detail; }
        if (Date.now() > deadline) throw new Error(`no "${type}" event in ${TIMEOUT} ms: ${JSON.stringify(seen.map((e) => e.type))}`);
        await new Promise((resolve) => { wake = resolve; setTimeout(resolve, 50); });
      }
    },
  };
}

/** Waits until the router knows `session`: its gateway tells it of a new
 * session on its own link, which may come after the first reply. */
async function known(session) {
  for (let tries = 0; tries < 200; tries++) {
    const reply = await fetch(`${ROUTER_HTTP}/v1/online`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ sessions: [session] }) });
    if ((await reply.json()).sessions.includes(session)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`the router never knew ${session}`);
}

/** Waits until the router lists `session` in exactly `channels`: a
 * gateway reports a subscribe on its own link, right after the answer. */
async function inChannels(session, channels) {
  for (let tries = 0; tries < 200; tries++) {
    const reply = await fetch(`${ROUTER_HTTP}/v1/channels`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ session }) });
    if (JSON.stringify((await reply.json()).channels) === JSON.stringify(channels)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`the router never listed ${session} in ${channels}`);
}

async function push(session, data) {
  const reply = await fetch(`${ROUTER_HTTP}/v1/send`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ sessions: [session], data }) });
  assert.equal(reply.status, 200, await reply.text());
}

/** A client on `url`, watched, and closed when the test ends. */
function client(t, url, options) {
  const fk = new FkClient(url, options);
  t.after(() => fk.close());
  return [fk, watch(fk)];
}

test("sends and receives text, bytes and JSON", async (t) => {
  const [fk, events] = client(t, FK_A);
  const opened = await events.take("open");
  assert.match(opened.session, /^[0-9a-f]{16}$/);
  fk.sendJSON({ hello: "fk" });
  assert.deepEqual((await events.take("message")).json, { hello: "fk" });
  fk.send(new Uint8Array([0, 1, 255]));
  assert.deepEqual([...new Uint8Array((await events.take("message")).data)], [0, 1, 255]);
  fk.close();
  assert.deepEqual(await events.take("close"), { code: 1000, reason: "", reconnecting: false });
  assert.equal(fk.send("after close"), false);
});

for (const transport of ["websocket", "sse"]) {
  const options = { transports: [transport], minDelayMs: 50 };

  test(`${transport}: a drop resumes the same session, with what it missed, in order`, async (t) => {
    const relay = await relayTo(FK_A);
    t.after(() => relay.stop());
    const [fk, events] = client(t, relay.url, options);
    const { session } = await events.take("open");
    fk.send("before");
    await events.take("message");
    relay.cut();
    assert.equal((await events.take("close")).reconnecting, true);
    await push(session, "missed 1");
    await push(session, "missed 2");
    relay.open();
    assert.deepEqual(await events.take("resumed"), { session, resumed: true });
    await events.take("message");
    await events.take("message");
    fk.send("after");
    await events.take("message");
    const seen = events.seen.map(({ type, detail }) => (type === "message" ? detail.data : type));
    assert.deepEqual(seen.filter((e) => e !== "close"), ["open", "before", "resumed", "missed 1", "missed 2", "after"]);
    assert.equal(fk.saved().last, 4, "every message counted once");
  });

  test(`${transport}: a session resumes on another gateway of the cluster`, async (t) => {
    const relay = await relayTo(FK_A);
    t.after(() => relay.stop());
    let connections = 0;
    const [fk, events] = client(t, () => (connections++ === 0 ? relay.url : FK_B), options);
    const { session } = await events.take("open");
    await known(session);
    relay.cut();
    await events.take("close");
    await push(session, "while moving");
    assert.deepEqual(await events.take("resumed"), { session, resumed: true });
    assert.equal((await events.take("message")).data, "while moving");
    fk.send("sent to the new gateway");
    assert.equal((await events.take("message")).data, "sent to the new gateway");
    assert.equal(connections, 2);
  });
}

test("an expired session is lost, and a new one opens", async (t) => {
  const relay = await relayTo(FK_SHORT);
  t.after(() => relay.stop());
  const [, events] = client(t, relay.url);
  const { session } = await events.take("open");
  relay.cut();
  await events.take("close");
  await new Promise((resolve) => setTimeout(resolve, 800)); // past the 300 ms grace
  relay.open();
  const lost = await events.take("lost");
  assert.deepEqual([lost.session, lost.code], [session, 4101]);
  const opened = await events.take("open");
  assert.notEqual(opened.session, session);
  assert.equal(opened.resumed, false);
});

test("a refused token starts a new session", async (t) => {
  const [fk, events] = client(t, FK_A, { session: { token: "00000000000000aa.0.forged", last: 3 } });
  assert.equal((await events.take("lost")).code, 4100);
  const opened = await events.take("open");
  assert.match(opened.session, /^[0-9a-f]{16}$/);
  assert.equal(fk.saved().last, 0, "a new session counts from 0");
});

test("a kicked client stays away", async (t) => {
  const [fk, events] = client(t, FK_A);
  const { session } = await events.take("open");
  await known(session);
  const reply = await fetch(`${ROUTER_HTTP}/v1/kick`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ sessions: [session] }) });
  assert.equal(reply.status, 200);
  assert.deepEqual(await events.take("close"), { code: 4000, reason: "kicked", reconnecting: false });
  assert.equal(fk.state, "closed");
});

test("backoff grows, with jitter, up to its ceiling", (t) => {
  const [fk] = client(t, "ws://127.0.0.1:9/", { minDelayMs: 100, maxDelayMs: 1000, WebSocket: class { close() {} } });
  const delays = Array.from({ length: 8 }, () => fk.delay());
  delays.forEach((d, i) => {
    const ceiling = Math.min(1000, 100 * 2 ** i);
    assert.ok(d >= ceiling / 2 && d <= ceiling, `retry ${i}: ${d} ms`);
  });
});

/** A WebSocket that never opens, as behind a proxy that strips Upgrade. */
class BlockedWebSocket {
  constructor() {
    setTimeout(() => { this.onerror?.({}); this.onclose?.({ code: 1006, reason: "" }); }, 10);
  }
  close() {}
}

test("over SSE: sends and receives text, bytes and JSON", async (t) => {
  const [fk, events] = client(t, FK_A, { transports: ["sse"] });
  const opened = await events.take("open");
  assert.match(opened.session, /^[0-9a-f]{16}$/);
  assert.equal(fk.transport, "sse");
  fk.sendJSON({ hello: "sse" });
  fk.send("two\nlines\r\nand a CR");
  fk.send(new Uint8Array([0, 1, 255]));
  assert.deepEqual((await events.take("message")).json, { hello: "sse" });
  assert.equal((await events.take("message")).data, "two\nlines\r\nand a CR", "sent in order, whole");
  assert.deepEqual([...new Uint8Array((await events.take("message")).data)], [0, 1, 255]);
  await known(opened.session);
  await push(opened.session, "pushed");
  assert.equal((await events.take("message")).data, "pushed");
  fk.close();
  assert.deepEqual(await events.take("close"), { code: 1000, reason: "", reconnecting: false });
});

test("subscribe joins a channel the backend allows, and is refused one it does not", async (t) => {
  for (const transports of [["websocket"], ["sse"]]) {
    const [fk, events] = client(t, FK_A, { transports });
    const { session } = await events.take("open");
    assert.deepEqual(await fk.subscribe("room"), { channel: "room" });
    await assert.rejects(fk.subscribe("private-room"), (err) => err.code === 403);
    await inChannels(session, ["room"]);
    const published = await fetch(`${ROUTER_HTTP}/v1/publish`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify({ channel: "room", data: "to the room" }) });
    assert.equal(published.status, 200);
    assert.equal((await events.take("message")).data, "to the room", `${transports}`);
    fk.close();
  }
});

async function router(command, body) {
  const reply = await fetch(`${ROUTER_HTTP}/v1/${command}`, { method: "POST", headers: JSON_TYPE, body: JSON.stringify(body) });
  const text = await reply.text();
  assert.equal(reply.status, 200, text);
  return JSON.parse(text);
}

test("presence events keep members() up to date, per transport", async (t) => {
  for (const transports of [["websocket"], ["sse"]]) {
    const channel = `presence-${transports[0]}`;
    const [ann, annEvents] = client(t, FK_A, { transports });
    const [bob, bobEvents] = client(t, FK_B, { transports });
    const annId = (await annEvents.take("open")).session;
    const bobId = (await bobEvents.take("open")).session;
    await known(annId);
    await known(bobId);
    await router("join", { channel, sessions: [annId], user: "ann", info: { team: 1 } });
    assert.equal((await annEvents.take("presence")).event, "members");
    await router("join", { channel, sessions: [bobId], user: "bob" });
    assert.equal((await bobEvents.take("presence")).count, 2);
    assert.deepEqual(await annEvents.take("presence"), { fk: "presence", event: "join", channel, session: bobId, user: "bob" });
    assert.deepEqual([...ann.members(channel).values()].map((m) => [m.user, m.online]).sort(), [["ann", true], ["bob", true]]);
    assert.deepEqual(bob.members(channel).get(annId), { session: annId, user: "ann", info: { team: 1 }, online: true });
    bob.close();
    assert.equal((await annEvents.take("presence")).event, "leave", `${transports}`);
    assert.deepEqual([...ann.members(channel).keys()], [annId]);
    assert.equal(annEvents.seen.filter((e) => e.type === "message").length, 0, "presence is not a message");
    ann.close();
  }
});

test("a kept channel's messages come with their offset, and a new session recovers from the last one", async (t) => {
  const [fk, events] = client(t, FK_A, { transports: ["websocket"] });
  const first = (await events.take("open")).session;
  await known(first);
  await router("join", { channel: "news-1", sessions: [first] });
  for (const n of [1, 2]) await router("publish", { channel: "news-1", data: { n } });
  assert.deepEqual((await events.take("message")).json, { n: 1 });
  const second = await events.take("message");
  assert.equal(second.channel, "news-1");
  const seen = fk.offsets()["news-1"];
  assert.equal(seen, second.offset);
  await router("publish", { channel: "news-1", data_base64: "AAH/" });
  const binary = await events.take("message");
  assert.deepEqual([...new Uint8Array(binary.data)], [0, 1, 255], "binary, as published");

  // Another client (a new session) joins with what this one saw last: it gets only what came after.
  const [other, otherEvents] = client(t, FK_B, { transports: ["sse"] });
  const session = (await otherEvents.take("open")).session;
  await known(session);
  const reply = await router("join", { channel: "news-1", sessions: [session], since: seen });
  assert.deepEqual(reply, { sessions: 1, recovered: true });
  assert.deepEqual([...new Uint8Array((await otherEvents.take("message")).data)], [0, 1, 255]);
  assert.equal(other.offsets()["news-1"], binary.offset);
  fk.close();
  other.close();
});

test("falls back to SSE after the WebSocket fails to open, in the order given", async (t) => {
  const [fk, events] = client(t, FK_A, { WebSocket: BlockedWebSocket, fallbackAfter: 2, minDelayMs: 20 });
  assert.equal(fk.transport, "websocket");
  const opened = await events.take("open");
  const seen = events.seen.map(({ type, detail }) => (type === "fallback" ? `fallback:${detail.transport}` : type));
  assert.deepEqual(seen, ["close", "close", "fallback:sse", "open"], "two failed WebSockets, then SSE");
  assert.equal(fk.transport, "sse");
  fk.send("via sse");
  assert.equal((await events.take("message")).data, "via sse");
  await known(opened.session);
  await push(opened.session, "to the fallback");
  assert.equal((await events.take("message")).data, "to the fallback");

  const [sseFirst, first] = client(t, FK_A, { transports: ["sse", "websocket"] });
  await first.take("open");
  assert.equal(sseFirst.transport, "sse", "SSE first when asked");
  const [wsOnly, only] = client(t, FK_A, { WebSocket: BlockedWebSocket, transports: ["websocket"], minDelayMs: 20 });
  await only.take("close");
  await only.take("close");
  await only.take("close");
  assert.equal(wsOnly.transport, "websocket", "no fallback unless listed");
});
