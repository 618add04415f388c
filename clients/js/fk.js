// A client for the fk gateway: one ES module, no build step, no
// dependencies; browsers and Node 20+ (Node 20 needs --experimental-websocket).
// It follows docs/PROTOCOL.md's resume rules: a dropped connection comes
// back to the same session, on any gateway of the cluster, and gets what it
// missed; when the session cannot come back, "lost" says so and a new one
// opens. Where a WebSocket cannot open (a proxy that strips Upgrade, no
// WebSocket at all), it falls back to Server-Sent Events with HTTP posts,
// with the same API (docs/CLIENTS.md).
//
//   import { FkClient } from "./fk.js";
//   const fk = new FkClient("wss://chat.example.com/ws");
//   fk.on("open", ({ session }) => fk.sendJSON({ type: "login", name: "ann" }));
//   fk.on("message", ({ data, json }) => console.log(json ?? data));
//   fk.on("lost", () => console.log("a new session: log in again"));
//   fk.on("presence", () => render(fk.members("presence-room")));
//   fk.close();  // ends the session for good

/** Close codes after which the session cannot be resumed (PROTOCOL.md). */
const SESSION_GONE = new Set([4100, 4101, 4102, 4103]);
/** Close codes after which the client does not come back by itself: kicked,
 * or its session taken by another connection. */
const NO_RETURN = new Set([4000, 4105]);
const isRefusal = (code) => code >= 4400 && code <= 4499;

export class FkClient extends EventTarget {
  /**
   * @param {string | (() => string)} url the gateway's ws:// or wss:// URL, or
   *   a function that gives one for each connection (to move between gateways)
   * @param {object} [options]
   * @param {boolean} [options.resume=true] ask for a resumable session
   * @param {{token: string, last: number}} [options.session] a session to
   *   resume first, as `saved()` gave it (say, from sessionStorage after a reload)
   * @param {number} [options.graceMs=30000] the gateways' --resume-grace-ms:
   *   past it since the drop, the session is taken for lost without asking
   * @param {number} [options.minDelayMs=250] the first retry's delay
   * @param {number} [options.maxDelayMs=30000] the longest delay between retries
   * @param {number} [options.connectTimeoutMs=10000] how long a connection may
   *   take to open (and, with resume, to bring the session message)
   * @param {typeof WebSocket} [options.WebSocket] the WebSocket class to use
   * @param {string[]} [options.transports=["websocket", "sse"]] the transports
   *   to try, in order; a missing WebSocket class skips "websocket"
   * @param {number} [options.fallbackAfter=2] connections of a transport that
   *   fail before they open, in a row, before the next transport is tried
   * @param {string | (() => string)} [options.sseUrl] the event stream's URL
   *   (default: `url` with http:// or https:// for ws:// or wss://)
   * @param {typeof fetch} [options.fetch] the fetch to use for SSE
   */
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = {
      resume: true, graceMs: 30000, minDelayMs: 250, maxDelayMs: 30000, connectTimeoutMs: 10000,
      transports: ["websocket", "sse"], fallbackAfter: 2, ...options,
    };
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    this.transports = this.options.transports.filter((t) => (t === "websocket" ? this.WebSocket : this.fetch));
    /** The transport in use or being tried: "websocket" or "sse". */
    this.transport = this.transports[0];
    this.failures = 0;
    /** The session id the backend sees (SESSIONID); empty until the first "open". */
    this.session = "";
    this.token = options.session?.token ?? "";
    this.received = options.session?.last ?? 0;
    this.state = "connecting";
    this.retries = 0;
    this.droppedAt = 0;
    this.timer = null;
    this.conn = null;
    /** Subscribes waiting for the gateway's answer, by channel. */
    this.subscribing = new Map();
    /** Presence channels' members as their events tell, by channel, then session. */
    this.presence = new Map();
    /** The offset of the last message seen on each channel that sends them
     * (the router's --history-envelope), across sessions. */
    this.lastOffsets = new Map();
    this.connect();
  }

  /** Calls `listener(detail)` on each event of `type`; returns this. */
  on(type, listener) {
    this.addEventListener(type, (event) => listener(event.detail));
    return this;
  }

  /** What to keep to resume after a reload: `new FkClient(url, {session: saved})`. */
  saved() {
    return this.token ? { token: this.token, last: this.received } : null;
  }

  /** Sends text or bytes; false when not connected (nothing is queued). */
  send(data) {
    if (this.state !== "open") return false;
    this.conn.send(data);
    return true;
  }

  sendJSON(value) {
    return this.send(JSON.stringify(value));
  }

  /** Asks to join `channel`; your backend decides (EVENT=5, with the
   * gateway's --client-subscribe). Resolves once joined; rejects with the
   * backend's status, or when not connected. */
  subscribe(channel) {
    if (!this.sendJSON({ fk: "subscribe", channel })) return Promise.reject(new Error("not connected"));
    return new Promise((resolve, reject) => {
      const waiting = this.subscribing.get(channel) ?? [];
      this.subscribing.set(channel, [...waiting, { resolve, reject }]);
    });
  }

  /** Ends the session (the backend gets its close event); no reconnect. */
  close(code = 1000, reason = "") {
    clearTimeout(this.timer);
    this.state = "closed";
    this.token = "";
    if (this.conn) this.conn.close(code, reason);
  }

  connect() {
    const base = this.transport === "sse" ? this.options.sseUrl ?? this.url : this.url;
    const url = new URL(typeof base === "function" ? base() : base);
    if (this.options.resume) {
      url.searchParams.set("resume", this.token || "1");
      if (this.token) url.searchParams.set("last", String(this.received));
    }
    let ended = false;
    const end = (code, reason) => {
      if (ended) return;
      ended = true;
      clearTimeout(this.timer);
      this.onClose(code, reason);
    };
    const received = (data) => {
      if (ended) return;
      this.received++;
      const json = parseJSON(data);
      if (json?.source === "gateway" && (json.type === "subscribed" || json.type === "subscribe_refused")) {
        return this.answered(json);
      }
      if (json?.fk === "presence" && typeof json.channel === "string") return this.presenceEvent(json);
      if (json?.fk === "pub" && typeof json.channel === "string") return this.published(json);
      this.emit("message", { data, json });
    };
    const greeted = (message) => { if (!ended) this.onSession(message); };
    this.conn = this.transport === "sse"
      ? this.connectSse(url, { end, received, greeted })
      : this.connectWebSocket(url, { end, received, greeted });
    // A connection that never opens ends too.
    this.timer = setTimeout(() => { end(1006, "connect timeout"); this.conn.abort(); }, this.options.connectTimeoutMs);
  }

  connectWebSocket(url, { end, received, greeted }) {
    const ws = new this.WebSocket(url.toString());
    ws.binaryType = "arraybuffer";
    // With resume, the gateway's session message comes first on every connection.
    let greeting = this.options.resume;
    // An error before the open is its end: Node's WebSocket fires no close
    // after a reset there.
    ws.onerror = () => { if (this.state !== "open") end(1006, ""); };
    ws.onopen = () => {
      if (!greeting) greeted({ id: "", resumed: false });
    };
    ws.onmessage = (event) => {
      if (!greeting) return received(event.data);
      greeting = false;
      greeted(JSON.parse(event.data));
    };
    ws.onclose = (event) => end(event.code, event.reason);
    return { send: (data) => ws.send(data), close: (code, reason) => ws.close(code, reason), abort: () => ws.close() };
  }

  /** An event stream for what comes, a post for each message that goes, in
   * order (docs/PROTOCOL.md, "Server-Sent Events"). */
  connectSse(url, { end, received, greeted }) {
    if (url.protocol === "ws:" || url.protocol === "wss:") url.protocol = url.protocol === "ws:" ? "http:" : "https:";
    const base = `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
    const aborter = new AbortController();
    let sendToken = "";
    let posts = Promise.resolve();
    const post = (what, body, type) => {
      const headers = { Authorization: `Bearer ${sendToken}`, "Content-Type": type };
      posts = posts.then(() => this.fetch(`${base}/${what}`, { method: "POST", headers, body }))
        .then((reply) => { if (reply.status !== 202) this.emit("error", { status: reply.status }); })
        .catch(() => {});
      return posts;
    };
    // A page that goes away ends its session, as a browser's WebSocket
    // does with 1001; a keepalive post outlives the page.
    const leave = () => {
      const headers = { Authorization: `Bearer ${sendToken}` };
      this.fetch(`${base}/close`, { method: "POST", headers, keepalive: true }).catch(() => {});
    };
    const stop = (code, reason) => {
      globalThis.removeEventListener?.("pagehide", leave);
      aborter.abort();
      end(code, reason);
    };
    const onEvent = ({ event, data }) => {
      if (event === "session") {
        const session = JSON.parse(data);
        sendToken = session.send;
        globalThis.addEventListener?.("pagehide", leave);
        return greeted(this.options.resume ? session : { id: session.id, resumed: false });
      }
      if (event === "close") {
        const { code, reason } = JSON.parse(data);
        return stop(code, reason);
      }
      if (event === "" || event === "message") return received(data);
      if (event === "text64") return received(new TextDecoder().decode(fromBase64(data)));
      if (event === "binary") return received(fromBase64(data).buffer);
    };
    this.fetch(url.toString(), { headers: { Accept: "text/event-stream" }, cache: "no-store", signal: aborter.signal })
      .then(async (response) => {
        if (response.status !== 200) {
          const refusal = parseJSON(await response.text()) ?? {};
          return stop(refusal.code ?? 1006, refusal.reason ?? `HTTP ${response.status}`);
        }
        await readEvents(response.body, onEvent);
        stop(1006, "");
      })
      .catch(() => stop(1006, ""));
    return {
      send: (data) => {
        const text = typeof data === "string";
        post("send", data, text ? "text/plain; charset=utf-8" : "application/octet-stream");
      },
      // The stream's close event ends it; a stream that says nothing
      // more is let go after a second.
      close: () => {
        globalThis.removeEventListener?.("pagehide", leave);
        if (!sendToken) return aborter.abort();
        post("close", "", "text/plain").finally(() => setTimeout(() => aborter.abort(), 1000));
      },
      abort: () => aborter.abort(),
    };
  }

  /** The gateway's answer to a subscribe: "subscribed" or "subscribe_refused". */
  answered({ type, channel, code }) {
    const [first, ...rest] = this.subscribing.get(channel) ?? [];
    if (rest.length) this.subscribing.set(channel, rest);
    else this.subscribing.delete(channel);
    this.emit(type, { channel, code });
    if (type === "subscribed") first?.resolve({ channel });
    else first?.reject(Object.assign(new Error(`subscribe to ${channel} refused: ${code}`), { code }));
  }

  /** The offset of the last message seen on each channel that sends them,
   * as `{channel: offset}`: give it to your backend after a new session
   * opens, and it joins with `since` to send what this client missed. */
  offsets() {
    return Object.fromEntries(this.lastOffsets);
  }

  /** A kept channel's message in its envelope: a `message` with its
   * `channel` and `offset`, its `data` as it was published. */
  published({ channel, offset, data, data_base64 }) {
    this.lastOffsets.set(channel, offset);
    const payload = data ?? Uint8Array.from(atob(data_base64 ?? ""), (c) => c.charCodeAt(0)).buffer;
    this.emit("message", { data: payload, json: typeof payload === "string" ? parseJSON(payload) : undefined, channel, offset });
  }

  /** A presence channel's members now: a Map of session id to
   * `{session, user, info, online}`, empty until this session joins it. */
  members(channel) {
    return new Map(this.presence.get(channel) ?? []);
  }

  /** The router's word on a presence channel: "members" (the list, as this
   * session joins), then "join", "leave", "offline" and "online". */
  presenceEvent(event) {
    const { channel, session } = event;
    if (event.event === "members") {
      this.presence.set(channel, new Map(event.members.map((member) => [member.session, member])));
    } else if (this.presence.has(channel)) {
      const members = this.presence.get(channel);
      if (event.event === "leave") members.delete(session);
      else members.set(session, { session, user: event.user, info: event.info, online: event.event !== "offline" });
    }
    this.emit("presence", event);
  }

  onSession(message) {
    const resumed = Boolean(message.resumed);
    this.session = message.id;
    this.token = message.resume ?? "";
    if (!resumed) this.received = 0;
    this.opened({ session: message.id, resumed });
  }

  opened(detail) {
    clearTimeout(this.timer);
    // A new session is in no channel yet.
    if (!detail.resumed) this.presence.clear();
    this.state = "open";
    this.retries = 0;
    this.failures = 0;
    this.droppedAt = 0;
    this.emit(detail.resumed ? "resumed" : "open", detail);
  }

  onClose(code, reason) {
    const mine = this.state === "closed";
    // A transport that fails before it opens, again and again, is given up
    // for the next (a proxy that strips Upgrade fails every WebSocket).
    const unopened = this.state === "connecting" || this.state === "reconnecting";
    const next = this.transports[this.transports.indexOf(this.transport) + 1];
    const fallback = unopened && ++this.failures >= this.options.fallbackAfter && next;
    const retry = !mine && !NO_RETURN.has(code) && !isRefusal(code);
    if (!this.droppedAt) this.droppedAt = Date.now();
    const graceOver = Date.now() - this.droppedAt > this.options.graceMs;
    if (this.token && retry && (SESSION_GONE.has(code) || graceOver)) {
      this.emit("lost", { session: this.session, code, reason });
    }
    if (!retry || SESSION_GONE.has(code) || graceOver) {
      this.token = "";
      this.received = 0;
    }
    this.state = retry ? "reconnecting" : "closed";
    this.emit("close", { code, reason, reconnecting: retry });
    if (fallback) {
      [this.transport, this.failures, this.retries] = [next, 0, 0];
      this.emit("fallback", { transport: next });
    }
    if (retry) this.timer = setTimeout(() => this.connect(), this.delay());
  }

  /** Exponential backoff with jitter: half of it fixed, half random. */
  delay() {
    const ceiling = Math.min(this.options.maxDelayMs, this.options.minDelayMs * 2 ** this.retries++);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** Reads an event stream: `onEvent({event, data})` for each event, until it ends. */
async function readEvents(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "";
  let data = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, "");
      buffer = buffer.slice(newline + 1);
      if (line === "") {
        if (data !== null) onEvent({ event, data });
        [event, data] = ["", null];
        continue;
      }
      const colon = line.indexOf(":");
      if (colon === 0) continue;
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      if (field === "data") data = data === null ? value : `${data}\n${value}`;
    }
  }
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function parseJSON(data) {
  if (typeof data !== "string") return undefined;
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}
