// A client for the fk gateway: one ES module, no build step, no
// dependencies; browsers and Node 20+ (Node 20 needs --experimental-websocket).
// It follows docs/PROTOCOL.md's resume rules: a dropped connection comes
// back to the same session, on any gateway of the cluster, and gets what it
// missed; when the session cannot come back, "lost" says so and a new one
// opens.
//
//   import { FkClient } from "./fk.js";
//   const fk = new FkClient("wss://chat.example.com/ws");
//   fk.on("open", ({ session }) => fk.sendJSON({ type: "login", name: "ann" }));
//   fk.on("message", ({ data, json }) => console.log(json ?? data));
//   fk.on("lost", () => console.log("a new session: log in again"));
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
   */
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = { resume: true, graceMs: 30000, minDelayMs: 250, maxDelayMs: 30000, connectTimeoutMs: 10000, ...options };
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    /** The session id the backend sees (SESSIONID); empty until the first "open". */
    this.session = "";
    this.token = options.session?.token ?? "";
    this.received = options.session?.last ?? 0;
    this.state = "connecting";
    this.retries = 0;
    this.droppedAt = 0;
    this.timer = null;
    this.ws = null;
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
    this.ws.send(data);
    return true;
  }

  sendJSON(value) {
    return this.send(JSON.stringify(value));
  }

  /** Ends the session (the backend gets its close event); no reconnect. */
  close(code = 1000, reason = "") {
    clearTimeout(this.timer);
    this.state = "closed";
    this.token = "";
    if (this.ws) this.ws.close(code, reason);
  }

  connect() {
    const url = new URL(typeof this.url === "function" ? this.url() : this.url);
    if (this.options.resume) {
      url.searchParams.set("resume", this.token || "1");
      if (this.token) url.searchParams.set("last", String(this.received));
    }
    const ws = new this.WebSocket(url.toString());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    // With resume, the gateway's session message comes first on every connection.
    let greeted = !this.options.resume;
    let ended = false;
    const end = (code, reason) => {
      if (ended) return;
      ended = true;
      clearTimeout(this.timer);
      this.onClose(code, reason);
    };
    // A connection that never opens ends too, and an error before the open
    // is its end: Node's WebSocket fires no close after a reset there.
    this.timer = setTimeout(() => { end(1006, "connect timeout"); ws.close(); }, this.options.connectTimeoutMs);
    ws.onerror = () => { if (this.state !== "open") end(1006, ""); };
    ws.onopen = () => {
      if (greeted && !ended) this.opened({ session: "", resumed: false });
    };
    ws.onmessage = (event) => {
      if (ended) return;
      if (!greeted) {
        greeted = true;
        return this.onSession(JSON.parse(event.data));
      }
      this.received++;
      this.emit("message", { data: event.data, json: parseJSON(event.data) });
    };
    ws.onclose = (event) => end(event.code, event.reason);
  }

  onSession(message) {
    const resumed = Boolean(message.resumed);
    this.session = message.id;
    this.token = message.resume;
    if (!resumed) this.received = 0;
    this.opened({ session: message.id, resumed });
  }

  opened(detail) {
    clearTimeout(this.timer);
    this.state = "open";
    this.retries = 0;
    this.droppedAt = 0;
    this.emit(detail.resumed ? "resumed" : "open", detail);
  }

  onClose(code, reason) {
    const mine = this.state === "closed";
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

function parseJSON(data) {
  if (typeof data !== "string") return undefined;
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}
