// The liveroom client: one room, one socket at a time, reconnecting by itself.
// Platform-free: the socket comes from an adapter (adapters.js) and the frame codec is
// passed in (index.js sets msgpack as the default), so this file imports nothing outside
// this folder and runs unchanged in browsers, Node and mini-programs.
import { browserSocket } from "./adapters.js";

/** Every event type a `batch` carries (PROTOCOL.md "Events"). */
export const EVENT_TYPES = Object.freeze([
  "comment", "comment_deleted", "likes", "online", "pin", "notice", "sale", "stock",
  "sold_out", "draw_started", "draw_result", "milestone", "live",
]);

/** Refusals before the upgrade that retrying cannot fix (401 only with a fixed token). */
const FATAL_STATUS = new Set([400, 403, 404]);
const MAX_LIKE_N = 50; // PROTOCOL.md: like.n is 1-50
const MAX_PENDING_TAPS = 5 * MAX_LIKE_N; // taps kept while the windows catch up; more are dropped

const DEFAULTS = Object.freeze({
  callTimeoutMs: 10000,
  likeIntervalMs: 200,
  pingIntervalMs: 20000, // below the hub's 30 s ping_after_s: the hub never needs to probe us
  pongTimeoutMs: 10000, // nothing received this long after a ping: the socket is dead
  reconnect: true,
  backoffMinMs: 500,
  backoffMaxMs: 30000,
});

/** An error reply, an `error` frame, or a client-side failure; `code` is a PROTOCOL.md
 * error code, or one of the client's own: `timeout`, `disconnected`, `closed`, `bad_socket`. */
export class LiveRoomError extends Error {
  constructor(code, message, frame) {
    super(message ? `${code}: ${message}` : code);
    this.name = "LiveRoomError";
    this.code = code;
    this.frame = frame;
  }
}

/** A random idempotency key for `buy`: the same key again gets the same answer. */
export function newKey() {
  const c = typeof globalThis !== "undefined" ? globalThis.crypto : undefined; // older mini-program engines lack globalThis
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  // mini-programs have no crypto.randomUUID; the key only has to be unique per user
  let s = Date.now().toString(36);
  for (let i = 0; i < 3; i++) s += Math.random().toString(36).slice(2, 10);
  return s;
}

/**
 * How long to wait before reconnect attempt `attempt` (0-based): exponential backoff from
 * minMs, doubling up to maxMs, with "equal jitter" (between half and all of it) so that a
 * room's viewers dropped together do not come back together. A hub's `retry_ms` hint is a
 * floor: then between the hint and 1.5 times it. `random` is Math.random (a parameter for
 * tests).
 */
export function backoffDelay(attempt, minMs, maxMs, hintMs = 0, random = Math.random) {
  const base = Math.min(maxMs, minMs * Math.pow(2, Math.min(attempt, 30)));
  if (hintMs > 0) return Math.round(Math.max(hintMs, base / 2) * (1 + random() * 0.5));
  return Math.round(base / 2 + (random() * base) / 2);
}

function query(params) {
  // no URLSearchParams in mini-programs
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join("&");
}

export class LiveRoom {
  /**
   * @param {object} opts `url` (the hub's ws endpoint, e.g. "wss://host/ws"), `room`,
   *   `token` (a JWT, or a function returning one or a promise of one: called before each
   *   connection attempt, so a reconnect after `bye expired` can use a fresh token),
   *   `codec` ({name, encode, decode}), `socket` (an adapter factory, adapters.js), and
   *   the timings of DEFAULTS.
   */
  constructor(opts) {
    if (!opts || !opts.url || !opts.room) throw new TypeError("LiveRoom: url and room are required");
    this.url = opts.url;
    this.room = opts.room;
    this.token = opts.token;
    this.codec = opts.codec || LiveRoom.defaultCodec;
    if (!this.codec) throw new TypeError("LiveRoom: no codec (import from index.js, or pass codec)");
    this.socketFactory = opts.socket || browserSocket();
    this.options = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS)) if (opts[k] !== undefined) this.options[k] = opts[k];

    /** `idle`, `connecting`, `open` (welcomed), `closed` */
    this.state = "idle";
    this.epoch = null; // the room's epoch, from the last welcome
    this.seq = null; // the last durable seq seen: `since` for a resume
    this.welcome = null; // the last welcome frame (its `state` is the room as of `seq`)
    this.user = null;
    this.attempt = 0; // reconnect attempts since the last welcome

    this._handlers = new Map();
    this._conn = null; // {gen, sock, open, waiters}
    this._gen = 0;
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer}
    this._taps = 0;
    this._likeTimer = null;
    this._retryTimer = null;
    this._pingTimer = null;
    this._pongTimer = null;
    this._lastRecv = 0;
    this._bye = null;
    this._welcomed = false;
    this._ready = null; // {promise, resolve, reject} of connect()
  }

  // -- events ---------------------------------------------------------------------------

  /** Listen to a batch event type (EVENT_TYPES), a server frame (`bye`, `pong`, `error`,
   * `batch`), or a lifecycle event (`open`, `welcome`, `close`, `reconnecting`,
   * `reconnect`). Returns a function that removes the listener. */
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const set = this._handlers.get(type);
    if (set) set.delete(fn);
  }

  once(type, fn) {
    const off = this.on(type, (...args) => {
      off();
      fn(...args);
    });
    return off;
  }

  _emit(type, ...args) {
    const set = this._handlers.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // an app's handler must not break the client: report it as the platform does
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  // -- connection -----------------------------------------------------------------------

  /** Open the connection; resolves with the first `welcome`, rejects if the hub refuses
   * for good (bad room, banned, forbidden, no such room) or on close(). Reconnects after. */
  connect() {
    if (this._ready) return this._ready.promise;
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this._ready = { promise, resolve, reject, settled: false };
    if (this.state === "idle" || this.state === "closed") {
      this._closing = false;
      this._open();
    }
    return promise;
  }

  /** Use this token from the next connection attempt on (e.g. after `bye` `expired`). */
  setToken(token) {
    this.token = token;
  }

  get connected() {
    return this.state === "open";
  }

  _url(token) {
    const params = { room: this.room, token, codec: this.codec.name === "json" ? "json" : undefined };
    if (this._welcomed && this.epoch !== null && this.seq !== null) {
      params.since = this.seq;
      params.epoch = this.epoch;
    }
    return this.url + (this.url.includes("?") ? "&" : "?") + query(params);
  }

  async _open() {
    this.state = "connecting";
    const gen = ++this._gen;
    let token;
    try {
      token = typeof this.token === "function" ? await this.token() : this.token;
    } catch (err) {
      if (gen === this._gen) this._closed(null, { code: 1006, reason: `token: ${err && err.message}` });
      return;
    }
    if (gen !== this._gen || this._closing) return;
    const conn = { gen, sock: null, open: false, welcomed: false, waiters: [] };
    this._conn = conn;
    const live = () => conn.gen === this._gen;
    try {
      conn.sock = this.socketFactory(this._url(token), {
        onOpen: () => {
          if (!live()) return;
          conn.open = true;
          this._lastRecv = Date.now();
          this._emit("open");
          this._startPing();
        },
        onMessage: (data) => {
          if (live()) this._onMessage(data);
        },
        onClose: (info) => {
          conn.open = false;
          for (const w of conn.waiters.splice(0)) w();
          if (live()) this._closed(conn, info || {});
        },
      });
    } catch (err) {
      // the adapter could not even start (no WebSocket here, a malformed URL): retrying
      // would fail the same way
      this._closed(conn, { code: 1006, reason: String(err && err.message), fatal: true });
    }
  }

  _onMessage(data) {
    this._lastRecv = Date.now();
    let f;
    try {
      f = this.codec.decode(data);
    } catch (err) {
      this._emit("error", new LiveRoomError("bad_frame", `undecodable frame from the hub: ${err && err.message}`));
      return;
    }
    if (!f || typeof f !== "object") return;
    switch (f.t) {
      case "welcome":
        return this._onWelcome(f);
      case "batch":
        for (const ev of f.events || []) {
          if (typeof ev.seq === "number" && (this.seq === null || ev.seq > this.seq)) this.seq = ev.seq;
          this._emit(ev.type, ev, f);
        }
        return this._emit("batch", f);
      case "reply":
        return this._settle(f.id, f, f.ok ? null : new LiveRoomError(f.error && f.error.code, f.error && f.error.message, f));
      case "pong":
        if (f.id !== undefined && f.id !== null) this._settle(f.id, f, null);
        return this._emit("pong", f);
      case "error":
        return this._emit("error", new LiveRoomError(f.error && f.error.code, f.error && f.error.message, f));
      case "bye":
        this._bye = f;
        return this._emit("bye", f);
      default:
        return this._emit(f.t, f);
    }
  }

  _onWelcome(f) {
    // a reconnect's first welcome; a later one on the same socket is a reset (the room's
    // Redis lost its data): the same redraw, but no reconnect
    const reconnected = this._welcomed && this._conn !== null && !this._conn.welcomed;
    if (this._conn) this._conn.welcomed = true;
    this.state = "open";
    this.epoch = f.epoch;
    this.welcome = f;
    this.user = f.user;
    // recovered: the missed events follow and move `seq` on; otherwise the welcome's state
    // replaces whatever the app drew, as of the welcome's seq
    if (!f.recovered || this.seq === null) this.seq = f.seq;
    this._welcomed = true;
    this.attempt = 0;
    this._emit("welcome", f);
    if (reconnected) this._emit("reconnect", { recovered: !!f.recovered, welcome: f });
    if (this._taps > 0 && !this._likeTimer) this._armLikes();
    if (this._ready && !this._ready.settled) {
      this._ready.settled = true;
      this._ready.resolve(f);
    }
  }

  _closed(conn, info) {
    this._stopPing();
    this._gen++; // whatever this socket still reports is stale
    if (conn) conn.open = false;
    this._conn = null;
    if (this.state === "open" || this.state === "connecting") this.state = "connecting";
    this._failPending("disconnected", "the connection closed");
    const bye = this._bye;
    this._bye = null;
    const error = info.error;
    let fatal = null;
    if (this._closing) fatal = "closed";
    else if (info.fatal) fatal = "bad_socket";
    else if (bye && bye.reconnect === false) fatal = bye.reason || "closed";
    else if (info.status && FATAL_STATUS.has(info.status)) fatal = (error && error.code) || `http_${info.status}`;
    else if (info.status === 401 && typeof this.token !== "function") fatal = (error && error.code) || "bad_token";
    else if (!this.options.reconnect) fatal = "closed";
    const event = { code: info.code, reason: info.reason, status: info.status, error, bye, reconnecting: !fatal };
    if (fatal) {
      this.state = "closed";
      this._emit("close", event);
      const r = this._ready;
      this._ready = null;
      if (r && !r.settled) r.reject(new LiveRoomError(fatal, (error && error.message) || (bye && `bye ${bye.reason}`) || "closed"));
      return;
    }
    this._emit("close", event);
    const delayMs = this._delay(bye);
    this.attempt++;
    this._emit("reconnecting", { attempt: this.attempt, delayMs });
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      if (!this._closing) this._open();
    }, delayMs);
  }

  _delay(bye) {
    const hint = bye && typeof bye.retry_ms === "number" ? bye.retry_ms : 0;
    return backoffDelay(this.attempt, this.options.backoffMinMs, this.options.backoffMaxMs, hint);
  }

  _startPing() {
    this._stopPing();
    const { pingIntervalMs, pongTimeoutMs } = this.options;
    if (!(pingIntervalMs > 0)) return;
    this._pingTimer = setInterval(() => {
      const sentAt = Date.now();
      if (!this._send({ t: "ping" })) return;
      if (this._pongTimer) return; // the check of an earlier ping is still to come
      this._pongTimer = setTimeout(() => {
        this._pongTimer = null;
        // nothing at all from the hub since the ping (not even the pong): a dead link that
        // TCP has not noticed yet (phones switching networks); drop it and reconnect
        if (this._lastRecv < sentAt && this._conn) this._drop(this._conn, "no pong");
      }, pongTimeoutMs);
    }, pingIntervalMs);
  }

  _stopPing() {
    clearInterval(this._pingTimer);
    clearTimeout(this._pongTimer);
    this._pingTimer = this._pongTimer = null;
  }

  _drop(conn, reason) {
    try {
      conn.sock.close(4000, reason);
    } catch (e) {
      // already closing
    }
    if (conn.gen === this._gen) this._closed(conn, { code: 4000, reason });
  }

  /** Close for good: pending calls reject with `closed`, no reconnect. Resolves once the
   * socket has closed. */
  close() {
    this._closing = true;
    if (this._taps > 0) this._flushLikes();
    clearTimeout(this._retryTimer);
    clearTimeout(this._likeTimer);
    this._retryTimer = this._likeTimer = null;
    this._taps = 0;
    this._stopPing();
    const conn = this._conn;
    this._conn = null;
    this._gen++;
    this._failPending("closed", "closed by the client");
    const was = this.state;
    this.state = "closed";
    const r = this._ready;
    this._ready = null;
    if (r && !r.settled) r.reject(new LiveRoomError("closed", "closed by the client"));
    if (was !== "closed" && was !== "idle") this._emit("close", { code: 1000, reason: "client", reconnecting: false });
    if (!conn || !conn.sock) return Promise.resolve();
    const done = new Promise((resolve) => conn.waiters.push(resolve));
    try {
      conn.sock.close(1000, "");
    } catch (e) {
      return Promise.resolve();
    }
    // a socket that never reports its close must not hang the caller
    let timer;
    const late = new Promise((resolve) => (timer = setTimeout(resolve, 3000)));
    return Promise.race([done, late]).then(() => clearTimeout(timer));
  }

  // -- frames ---------------------------------------------------------------------------

  _send(frame) {
    const conn = this._conn;
    if (!conn || !conn.open || !conn.sock) return false;
    conn.sock.send(this.codec.encode(frame));
    return true;
  }

  /** Send op `op` with `fields`; settles with the `reply` frame ({t, id, ok, ...result}),
   * or rejects with a LiveRoomError whose `code` is the reply's error code, `timeout`, or
   * `disconnected` (the socket closed first: an op may or may not have run; `buy` can be
   * retried with the same key). */
  call(op, fields = {}, { timeoutMs = this.options.callTimeoutMs } = {}) {
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      if (this.state !== "open") {
        reject(new LiveRoomError("disconnected", `not connected (${this.state})`));
        return;
      }
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new LiveRoomError("timeout", `no reply to ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      try {
        if (!this._send({ ...fields, t: op, id })) throw new LiveRoomError("disconnected", "not connected");
      } catch (err) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(err instanceof LiveRoomError ? err : new LiveRoomError("bad_frame", String(err && err.message)));
      }
    });
  }

  /** Send a frame without an `id`: no reply (problems come as `error` events). */
  send(op, fields = {}) {
    return this._send({ ...fields, t: op });
  }

  _settle(id, frame, err) {
    const p = this._pending.get(id);
    if (!p) return;
    this._pending.delete(id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(frame);
  }

  _failPending(code, message) {
    for (const [id, p] of this._pending) {
      clearTimeout(p.timer);
      p.reject(new LiveRoomError(code, message));
      this._pending.delete(id);
    }
  }

  // -- likes ----------------------------------------------------------------------------

  /** A tap (or `n`): gathered into one `like` op per likeIntervalMs (200 ms). No reply;
   * the room total comes back as `likes` events. */
  like(n = 1) {
    if (!(n > 0)) return;
    this._taps = Math.min(MAX_PENDING_TAPS, this._taps + Math.floor(n));
    if (!this._likeTimer) this._armLikes();
  }

  _armLikes() {
    this._likeTimer = setTimeout(() => this._flushLikes(), this.options.likeIntervalMs);
  }

  _flushLikes() {
    clearTimeout(this._likeTimer);
    this._likeTimer = null;
    if (this._taps <= 0) return;
    const n = Math.min(MAX_LIKE_N, this._taps);
    if (!this._send({ t: "like", n })) return; // kept until the next welcome
    this._taps -= n;
    if (this._taps > 0) this._armLikes();
  }

  // -- viewer ops -----------------------------------------------------------------------

  /** Post a comment; resolves with the reply (`seq`). */
  comment(text) {
    return this.call("comment", { text });
  }

  /** Buy `qty` of `sale`; `key` defaults to a fresh idempotency key (pass the same key to
   * retry after `unavailable`, `timeout` or `disconnected`). Resolves with `order`,
   * `remaining` (and `key`, the key used). */
  buy(sale, { qty = 1, key = newKey(), timeoutMs } = {}) {
    return this.call("buy", { sale, qty, key }, timeoutMs ? { timeoutMs } : undefined).then((r) => ({ ...r, key }));
  }

  joinDraw(draw) {
    return this.call("join_draw", { draw });
  }

  report(seq, reason = "") {
    return this.call("report", { seq, reason });
  }

  /** An app-level ping with an id: resolves with the `pong`. */
  ping({ timeoutMs } = {}) {
    return this.call("ping", {}, timeoutMs ? { timeoutMs } : undefined);
  }

  // -- host ops -------------------------------------------------------------------------

  /** Pin a product (any JSON map) or unpin with null. */
  pin(product) {
    return this.call("pin", { product: product === undefined ? null : product });
  }

  notice(text) {
    return this.call("notice", { text });
  }

  /** {sku, title, price (cents), stock, limit, starts_at?, ends_at?} -> reply `sale`, `seq`. */
  saleCreate(sale) {
    return this.call("sale_create", sale);
  }

  saleClose(sale) {
    return this.call("sale_close", { sale });
  }

  /** {prize, winners, mode?, keyword?, duration_s?, exclude_winners?} -> reply `draw`. */
  drawStart(draw) {
    return this.call("draw_start", draw);
  }

  /** {kind, every | value, reward?, draw?} -> reply `milestone`. */
  milestoneSet(milestone) {
    return this.call("milestone_set", milestone);
  }

  milestoneRemove(milestone) {
    return this.call("milestone_remove", { milestone });
  }

  /** seconds: 0 unmutes, -1 forever; or {escalate: true} for the next step of the ladder. */
  mute(user, seconds) {
    if (seconds && typeof seconds === "object") return this.call("mute", { user, ...seconds });
    return this.call("mute", { user, seconds });
  }

  deleteComment(seq) {
    return this.call("delete_comment", { seq });
  }

  kick(user) {
    return this.call("kick", { user });
  }

  /** seconds: 0 lifts, -1 forever. */
  ban(user, seconds = -1) {
    return this.call("ban", { user, seconds });
  }

  liveStart() {
    return this.call("live_start");
  }

  liveEnd(session) {
    return this.call("live_end", session ? { session } : {});
  }
}

/** The codec used when none is given (index.js sets msgpack; a static field written out, for
 * mini-program engines without class fields). */
LiveRoom.defaultCodec = null;
