// The client's pure parts, without a hub: backoff, buffer slicing, tap gathering.
import assert from "node:assert/strict";
import { test } from "node:test";
import { decode, encode } from "@msgpack/msgpack";

import { LiveRoom, backoffDelay, msgpackCodec, toArrayBuffer } from "../src/index.js";

test("backoff doubles from the minimum up to the maximum, jittered between half and all of it", () => {
  const low = () => 0;
  const high = () => 0.999999;
  assert.deepEqual([0, 1, 2, 3, 10, 50].map((a) => backoffDelay(a, 500, 30000, 0, high)), [500, 1000, 2000, 4000, 30000, 30000]);
  assert.deepEqual([0, 1, 2, 3, 10].map((a) => backoffDelay(a, 500, 30000, 0, low)), [250, 500, 1000, 2000, 15000]);
  const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(4, 500, 30000)));
  assert.ok(spread.size > 10, "jitter spreads the viewers of a room");
});

test("a hub's retry_ms hint is a floor for the wait", () => {
  assert.equal(backoffDelay(0, 500, 30000, 5000, () => 0), 5000);
  assert.equal(backoffDelay(0, 500, 30000, 5000, () => 0.999999), 7500);
  assert.equal(backoffDelay(8, 500, 30000, 100, () => 0), 15000, "a small hint does not cut the backoff");
});

test("toArrayBuffer gives exactly a view's bytes, not its whole buffer", () => {
  const u8 = encode({ t: "comment", text: "hi" }); // a view over a larger pooled buffer
  assert.ok(u8.buffer.byteLength > u8.byteLength, "msgpack 2.8 encodes into a larger buffer");
  const ab = toArrayBuffer(u8);
  assert.ok(ab instanceof ArrayBuffer);
  assert.equal(ab.byteLength, u8.byteLength);
  assert.deepEqual(decode(new Uint8Array(ab)), { t: "comment", text: "hi" });
});

/** A socket that opens at once, welcomes, and records what the client sends (and what it
 * sends on a socket already dropped: nothing should be). */
function fakeHub() {
  const sent = [];
  const sentOnDead = [];
  let current = null;
  const factory = (url, h) => {
    const sock = { h, dead: false };
    current = sock;
    setTimeout(() => {
      h.onOpen();
      h.onMessage(msgpackCodec.encode({ t: "welcome", room: "r", user: { id: "u", name: "u", role: "viewer" }, epoch: "e1", seq: 0, state: {}, recovered: false }));
    });
    return {
      send: (d) => (sock.dead ? sentOnDead : sent).push(decode(d)),
      close: () => setTimeout(() => h.onClose({ code: 1000 })),
    };
  };
  const drop = () => {
    current.dead = true;
    current.h.onClose({ code: 1006 });
  };
  const push = (frame) => current.h.onMessage(msgpackCodec.encode(frame));
  return { factory, sent, sentOnDead, drop, push };
}

async function until(cond, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("taps: one like op per window, at most 50 each, the rest in the next windows", async () => {
  const hub = fakeHub();
  const c = new LiveRoom({ url: "ws://x/ws", room: "r", socket: hub.factory, likeIntervalMs: 20, pingIntervalMs: 0 });
  await c.connect();
  for (let i = 0; i < 120; i++) c.like();
  const likes = () => hub.sent.filter((f) => f.t === "like").map((f) => f.n);
  await until(() => likes().reduce((a, b) => a + b, 0) >= 120);
  assert.deepEqual(likes(), [50, 50, 20]);
  await c.close();
});

test("taps made while disconnected are kept and sent after the next welcome", async () => {
  const hub = fakeHub();
  const c = new LiveRoom({ url: "ws://x/ws", room: "r", socket: hub.factory, likeIntervalMs: 20, pingIntervalMs: 0, backoffMinMs: 50, backoffMaxMs: 50 });
  await c.connect();
  const rewelcomed = new Promise((r) => c.once("welcome", r));
  hub.drop();
  c.like(7);
  await rewelcomed;
  await until(() => hub.sent.some((f) => f.t === "like"));
  assert.deepEqual(hub.sent.filter((f) => f.t === "like").map((f) => f.n), [7]);
  assert.deepEqual(hub.sentOnDead, []);
  await c.close();
});

test("src/ loads in a browser without a build step: one bare import, @msgpack/msgpack, in codec.js", async () => {
  const { readdirSync, readFileSync } = await import("node:fs");
  const dir = new URL("../src/", import.meta.url);
  const bare = [];
  for (const name of readdirSync(dir)) {
    const text = readFileSync(new URL(name, dir), "utf8");
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']/gms)) {
      if (!m[1].startsWith("./")) bare.push(`${name}: ${m[1]}`);
    }
    // Node's Buffer only inside nodeSocket, which runs on Node alone
    const nodeOnly = name === "adapters.js" ? /\brequire\(|process\./ : /\brequire\(|process\.|Buffer\./;
    assert.doesNotMatch(text, nodeOnly, `${name} uses a Node-only API`);
  }
  assert.deepEqual(bare, ["codec.js: @msgpack/msgpack"]);
});

test("a welcome in the middle of a connection (room reset) replaces the state: no reconnect", async () => {
  const hub = fakeHub();
  const c = new LiveRoom({ url: "ws://x/ws", room: "r", socket: hub.factory, pingIntervalMs: 0 });
  const welcomes = [];
  const reconnects = [];
  c.on("welcome", (w) => welcomes.push(w));
  c.on("reconnect", (r) => reconnects.push(r));
  await c.connect();
  hub.push({ t: "batch", room: "r", events: [{ type: "notice", seq: 5, text: "x" }, { type: "likes", total: 3 }] });
  assert.equal(c.seq, 5);
  hub.push({ t: "welcome", room: "r", user: { id: "u", name: "u", role: "viewer" }, epoch: "e2", seq: 1, state: {}, recovered: false });
  assert.equal(welcomes.length, 2);
  assert.equal(reconnects.length, 0);
  assert.equal(c.epoch, "e2");
  assert.equal(c.seq, 1, "the new epoch's seq: a later resume asks from there");
  await c.close();
});

test("a bye's retry_ms hint sets the wait before reconnecting; reconnect: false ends it", async () => {
  const hub = fakeHub();
  const c = new LiveRoom({ url: "ws://x/ws", room: "r", socket: hub.factory, pingIntervalMs: 0, backoffMinMs: 10, backoffMaxMs: 20 });
  const waits = [];
  const closes = [];
  c.on("reconnecting", (r) => waits.push(r.delayMs));
  c.on("close", (e) => closes.push(e));
  await c.connect();
  hub.push({ t: "bye", reason: "draining", reconnect: true, retry_ms: 400 });
  hub.drop();
  assert.ok(waits[0] >= 400 && waits[0] <= 600, `waited ${waits[0]} ms`);
  assert.equal(closes[0].bye.reason, "draining");
  await new Promise((r) => c.once("welcome", r));
  hub.push({ t: "bye", reason: "kicked", reconnect: false });
  hub.drop();
  assert.equal(waits.length, 1);
  assert.equal(closes[1].reconnecting, false);
  assert.equal(c.state, "closed");
});

test("an adapter that cannot start rejects connect() instead of retrying", async () => {
  let tries = 0;
  const broken = () => {
    tries++;
    throw new SyntaxError("bad url");
  };
  const c = new LiveRoom({ url: "ws://x/ws", room: "r", socket: broken, pingIntervalMs: 0 });
  await assert.rejects(c.connect(), { code: "bad_socket" });
  assert.equal(tries, 1);
  assert.equal(c.state, "closed");
});
