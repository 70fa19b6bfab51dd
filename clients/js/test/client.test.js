// liveroom-client against a real hub (and a real Redis) started by the test.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { decode } from "@msgpack/msgpack";

import { LiveRoom, LiveRoomError, browserSocket, jsonCodec, msgpackCodec, nodeSocket, wxSocket } from "../src/index.js";
import { Hub, eventually, startRedis, token } from "../testlib/hub.js";

let redis;
let hubA;
let hubB;
const clients = [];
let roomN = 0;

const room = (name) => `js-${name}-${process.pid}-${++roomN}`;

/** A client on `hub` (a node `ws` socket unless `socket` is given), closed after the tests. */
function client(hub, roomId, tok, opts = {}) {
  const c = new LiveRoom({ url: hub.wsUrl, room: roomId, token: tok, socket: nodeSocket(WebSocket), ...opts });
  clients.push(c);
  return c;
}

/** An adapter that records every frame the client sends (decoded), around another adapter.
 * `factory.deafen()` makes the current socket ignore what arrives: a half-dead link. */
function recording(inner, codec = msgpackCodec) {
  const sent = [];
  const factory = (url, handlers) => {
    factory.urls.push(url);
    let deaf = false;
    factory.deafen = () => (deaf = true);
    const sock = inner(url, { ...handlers, onMessage: (data) => deaf || handlers.onMessage(data) });
    return {
      send: (data) => {
        sent.push(codec.decode(data));
        sock.send(data);
      },
      close: (code, reason) => sock.close(code, reason),
    };
  };
  factory.sent = sent;
  factory.urls = [];
  factory.deafen = () => {};
  return factory;
}

/** Every `type` event a client receives, in order. */
function collect(c, type) {
  const got = [];
  c.on(type, (ev) => got.push(ev));
  return got;
}

before(async () => {
  redis = await startRedis();
  [hubA, hubB] = await Promise.all([new Hub(redis.url).start(), new Hub(redis.url).start()]);
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([hubA && hubA.cleanup(), hubB && hubB.cleanup()]);
  if (redis) await redis.stop();
});

describe("liveroom-client", () => {
  test("connect resolves with the welcome, and events carry the room's state", async () => {
    const r = room("welcome");
    const c = client(hubA, r, token("alice", { name: "Alice" }));
    const welcomes = collect(c, "welcome");
    const w = await c.connect();
    assert.equal(w.t, "welcome");
    assert.equal(w.room, r);
    assert.deepEqual(w.user, { id: "alice", name: "Alice", role: "viewer" });
    assert.equal(w.recovered, false);
    assert.equal(typeof w.epoch, "string");
    assert.equal(c.connected, true);
    assert.equal(c.epoch, w.epoch);
    assert.equal(welcomes.length, 1);
    // the online count reaches the viewer as an `online` event
    const online = collect(c, "online");
    await eventually(() => online.some((e) => e.count === 1), "online 1");
  });

  test("a comment is seen by a second client (on another hub, in the json codec)", async () => {
    const r = room("comment");
    const a = client(hubA, r, token("alice"));
    const b = client(hubB, r, token("bob"), { codec: jsonCodec });
    await Promise.all([a.connect(), b.connect()]);
    const seen = collect(b, "comment");
    const reply = await a.comment("hello from node");
    assert.equal(reply.ok, true);
    assert.equal(typeof reply.seq, "number");
    await eventually(() => seen.length === 1, "bob to see alice's comment");
    assert.equal(seen[0].text, "hello from node");
    assert.equal(seen[0].seq, reply.seq);
    assert.equal(seen[0].user.id, "alice");
    assert.equal(b.seq, reply.seq, "the client tracks the last durable seq for resuming");
  });

  test("taps are gathered into one like op per 200 ms", async () => {
    const r = room("likes");
    const sock = recording(nodeSocket(WebSocket));
    const a = client(hubA, r, token("alice"), { socket: sock });
    const b = client(hubA, r, token("bob"));
    await Promise.all([a.connect(), b.connect()]);
    const totals = collect(b, "likes");
    for (let i = 0; i < 30; i++) a.like();
    await eventually(() => sock.sent.some((f) => f.t === "like"), "the first like op");
    for (let i = 0; i < 12; i++) a.like();
    await eventually(() => totals.some((e) => e.total === 42), "the room total 42");
    const likes = sock.sent.filter((f) => f.t === "like");
    assert.deepEqual(likes.map((f) => f.n), [30, 12], "42 taps in two windows: two like ops");
    assert.ok(likes.every((f) => f.id === undefined), "likes ask for no reply");
  });

  test("buy settles with the reply; the same key gives the same order", async () => {
    const r = room("buy");
    const host = client(hubA, r, token("host1", { role: "host", rooms: [r] }));
    const viewer = client(hubB, r, token("carol"));
    await Promise.all([host.connect(), viewer.connect()]);
    const sales = collect(viewer, "sale");
    const created = await host.saleCreate({ sku: "sku-1", title: "Mug", price: 990, stock: 5, limit: 2 });
    assert.equal(typeof created.sale, "string");
    await eventually(() => sales.some((e) => e.sale.id === created.sale), "the sale event");
    const first = await viewer.buy(created.sale);
    assert.equal(first.ok, true);
    assert.equal(typeof first.order, "string");
    assert.equal(first.remaining, 4);
    assert.equal(typeof first.key, "string");
    const again = await viewer.buy(created.sale, { key: first.key });
    assert.equal(again.order, first.order, "idempotent: same key, same order");
    assert.equal(again.remaining, 4);
    const other = await viewer.buy(created.sale);
    assert.notEqual(other.order, first.order, "a new key is a new order");
  });

  test("an error reply rejects with the protocol's error code", async () => {
    const r = room("errors");
    const c = client(hubA, r, token("dave"));
    await c.connect();
    await assert.rejects(c.buy("nosuchsale"), (err) => err instanceof LiveRoomError && err.code === "no_such_sale");
    await assert.rejects(c.comment("   "), { code: "empty" });
    await assert.rejects(c.notice("viewers cannot"), { code: "forbidden" });
    await assert.rejects(c.call("no_such_op"), { code: "unknown_op" });
    // still connected and usable afterwards; ping() settles with the pong
    assert.equal((await c.comment("still here")).ok, true);
    assert.equal((await c.ping()).t, "pong");
  });

  test("a refused handshake rejects connect() with the hub's code, without retrying", async () => {
    const sock = recording(nodeSocket(WebSocket));
    const c = client(hubA, "bad room!", token("erin"), { socket: sock });
    const closes = collect(c, "close");
    await assert.rejects(c.connect(), { code: "bad_room" });
    assert.equal(closes.at(-1).reconnecting, false);
    assert.equal(c.state, "closed");
    assert.equal(sock.urls.length, 1);
  });

  test("kicked (bye reconnect: false): the client closes and stays closed", async () => {
    const r = room("kick");
    const host = client(hubA, r, token("host2", { role: "host", rooms: [r] }));
    const viewer = client(hubA, r, token("frank"));
    await Promise.all([host.connect(), viewer.connect()]);
    const byes = collect(viewer, "bye");
    const closes = collect(viewer, "close");
    await host.kick("frank");
    await eventually(() => closes.length === 1, "frank's close");
    assert.equal(byes[0].reason, "kicked");
    assert.equal(closes[0].reconnecting, false);
    assert.equal(viewer.state, "closed");
  });

  test("after the hub drops the connection the client reconnects and resumes with since: no comment missed", async () => {
    const r = room("resume");
    const sock = recording(nodeSocket(WebSocket));
    // the receiver on hub A, which restarts; the sender on hub B, which stays up
    const receiver = client(hubA, r, token("gina"), { socket: sock, backoffMinMs: 100, backoffMaxMs: 400 });
    const sender = client(hubB, r, token("hank"));
    await Promise.all([receiver.connect(), sender.connect()]);
    const seen = collect(receiver, "comment");
    const welcomes = collect(receiver, "welcome");
    const reconnects = collect(receiver, "reconnect");
    const byes = collect(receiver, "bye");
    const before = await sender.comment("before the drop");
    await eventually(() => seen.length === 1, "the first comment live");

    const sentWhileAway = [];
    const closed = new Promise((resolve) => receiver.once("close", resolve));
    const stopping = hubA.stop();
    const close = await closed;
    assert.equal(close.reconnecting, true);
    assert.equal(byes[0].reason, "draining");
    for (const text of ["one", "two", "three"]) sentWhileAway.push(await sender.comment(text));
    await stopping;
    await hubA.start(); // same port

    await eventually(() => reconnects.length === 1, "the reconnect", 15_000);
    assert.equal(reconnects[0].recovered, true);
    assert.equal(welcomes.at(-1).recovered, true);
    const resumeUrl = sock.urls.at(-1);
    assert.match(resumeUrl, new RegExp(`since=${before.seq}(&|$)`));
    assert.match(resumeUrl, new RegExp(`epoch=${encodeURIComponent(welcomes[0].epoch)}`));
    await eventually(() => seen.length === 4, "the three comments missed");
    assert.deepEqual(seen.map((e) => e.text), ["before the drop", "one", "two", "three"]);
    assert.deepEqual(seen.slice(1).map((e) => e.seq), sentWhileAway.map((x) => x.seq));
    // and it works as before
    assert.equal((await receiver.comment("back")).ok, true);
  });

  test("wx adapter: a SocketTask stand-in is only ever given ArrayBuffers, never views", async () => {
    const r = room("wx");
    const sent = [];
    const views = [];
    // the mini-program API as far as the client uses it, backed by a real `ws` socket
    const wx = {
      connectSocket({ url }) {
        const ws = new WebSocket(url);
        const on = {};
        ws.on("open", () => on.open && on.open({}));
        ws.on("message", (data, isBinary) => {
          // a SocketTask hands over ArrayBuffers (binary) or strings
          const ab = isBinary ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : data.toString();
          on.message && on.message({ data: ab });
        });
        ws.on("close", (code, reason) => on.close && on.close({ code, reason: reason.toString() }));
        ws.on("error", (err) => on.error && on.error({ errMsg: err.message }));
        return {
          onOpen: (fn) => (on.open = fn),
          onMessage: (fn) => (on.message = fn),
          onClose: (fn) => (on.close = fn),
          onError: (fn) => (on.error = fn),
          send({ data }) {
            if (typeof data !== "string") {
              if (!(data instanceof ArrayBuffer) || ArrayBuffer.isView(data)) views.push(data);
              sent.push(decode(new Uint8Array(data))); // the whole buffer is exactly one frame
            }
            ws.send(data);
          },
          close: ({ code, reason } = {}) => ws.close(code, reason),
        };
      },
    };
    const host = client(hubA, r, token("host3", { role: "host", rooms: [r] }));
    const c = client(hubA, r, token("ivy"), { socket: wxSocket(wx) });
    const comments = collect(c, "comment");
    const w = await c.connect();
    await host.connect();
    assert.equal(w.user.id, "ivy");
    const reply = await c.comment("from a mini-program");
    await eventually(() => comments.some((e) => e.seq === reply.seq), "its own comment back");
    const { sale } = await host.saleCreate({ sku: "s", title: "Cup", price: 100, stock: 3, limit: 1 });
    const bought = await c.buy(sale);
    assert.equal(bought.remaining, 2);
    c.like(3);
    await eventually(() => sent.some((f) => f.t === "like" && f.n === 3), "the like op");
    assert.deepEqual(views, [], "the SocketTask was handed a view");
    assert.deepEqual(sent.map((f) => f.t), ["comment", "buy", "like"]);
  });

  test("a link that goes silent is found by the app-level ping, dropped and resumed", async () => {
    const r = room("deaf");
    const sock = recording(nodeSocket(WebSocket));
    const c = client(hubA, r, token("jack"), { socket: sock, pingIntervalMs: 100, pongTimeoutMs: 300, backoffMinMs: 50, backoffMaxMs: 100 });
    const sender = client(hubB, r, token("kate"));
    await Promise.all([c.connect(), sender.connect()]);
    const pongs = collect(c, "pong");
    const seen = collect(c, "comment");
    const closes = collect(c, "close");
    const reconnects = collect(c, "reconnect");
    await eventually(() => pongs.length >= 1, "a pong");
    assert.ok(sock.sent.some((f) => f.t === "ping" && f.id === undefined), "pings go on a timer");
    sock.deafen(); // the socket stays open, but nothing reaches the client any more
    const lost = await sender.comment("sent into the void");
    await eventually(() => reconnects.length === 1, "the reconnect");
    assert.equal(closes[0].code, 4000);
    assert.equal(closes[0].reconnecting, true);
    assert.equal(reconnects[0].recovered, true);
    await eventually(() => seen.some((e) => e.seq === lost.seq), "the comment the silent link lost");
  });

  test("bye expired: the client reconnects with a fresh token from its token function", async () => {
    const r = room("expired");
    let calls = 0;
    const tokens = () => token("liam", { ttlS: ++calls === 1 ? 1 : 3600 });
    const c = client(hubA, r, tokens, { backoffMinMs: 50, backoffMaxMs: 100 });
    const byes = collect(c, "bye");
    const reconnects = collect(c, "reconnect");
    await c.connect();
    await eventually(() => reconnects.length === 1, "the reconnect after expiry", 10_000);
    assert.equal(byes[0].reason, "expired");
    assert.equal(byes[0].reconnect, true);
    assert.equal(calls, 2);
    assert.equal(reconnects[0].recovered, true);
    assert.equal((await c.comment("fresh token")).ok, true);
  });

  test("browser adapter (WHATWG WebSocket interface, here the ws package's): frames arrive as ArrayBuffers", async () => {
    const r = room("browser");
    const frames = [];
    class Spy extends WebSocket {
      constructor(url) {
        super(url);
        this.addEventListener("message", (e) => frames.push(e.data));
      }
    }
    const c = client(hubA, r, token("mia"), { socket: browserSocket(Spy) });
    const comments = collect(c, "comment");
    await c.connect();
    const reply = await c.comment("from a browser");
    await eventually(() => comments.some((e) => e.seq === reply.seq), "its comment back");
    assert.ok(frames.length >= 2 && frames.every((d) => d instanceof ArrayBuffer), "binaryType arraybuffer");
  });
});
