// The fan-out benchmark's Node peer: the same live room written the usual Node way.
//
// One process: socket.io 4 on Node's http server, with @socket.io/redis-adapter so that
// several such processes (one per port) share rooms through Redis pub/sub, as a team would
// scale a Socket.IO app. Same behaviour as bench/peers/socketio_server.py, so that
// bench/fanout.py drives both with one client: a client connects over the Engine.IO
// websocket transport with {token: JWT, room} as its connect auth (HS256, the hub's tokens),
// and joins the room; a `comment` {text} is re-emitted to the room as `comment`
// {type, user {id, name}, text, ts} and acknowledged with {ok: true}; `like` {n} taps are
// summed per process, added to a Redis counter every 100 ms and the total emitted to the
// room as `likes` {total}. No history, no sequence numbers, no sampling, no presence.
//
//   node bench/peers/node/server.js --port 8091 --redis redis://127.0.0.1:6390/0 --secret S
//
// GET /healthz answers 200 once Redis answers. Installed by bench/fanout.py with
// `npm ci --prefix bench/peers/node` (package-lock.json pins the versions).
"use strict";

const crypto = require("node:crypto");
const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const LIKE_FLUSH_MS = 100;

function args(argv) {
  const out = { host: "127.0.0.1", port: 8091, redis: process.env.LIVEROOM_REDIS || "redis://127.0.0.1:6379/0",
    secret: process.env.LIVEROOM_SECRETS || "" };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, "");
    if (!(k in out)) throw new Error(`unknown option ${argv[i]}`);
    out[k] = argv[i + 1];
  }
  out.port = Number(out.port);
  return out;
}

function b64url(buf) {
  return buf.toString("base64").replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

// HS256 only, as the hub accepts; a constant-time compare of the signature; exp required.
function verify(token, secrets) {
  const parts = String(token).split(".");
  if (parts.length !== 3) throw new Error("bad_token");
  const header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
  if (header.alg !== "HS256") throw new Error("bad_token");
  const given = Buffer.from(parts[2]);
  for (const s of secrets) {
    const want = Buffer.from(b64url(crypto.createHmac("sha256", s).update(`${parts[0]}.${parts[1]}`).digest()));
    if (want.length === given.length && crypto.timingSafeEqual(want, given)) {
      const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
      if (!claims.sub || !claims.exp || claims.exp * 1000 < Date.now()) throw new Error("bad_token");
      return claims;
    }
  }
  throw new Error("bad_token");
}

async function main() {
  const a = args(process.argv);
  const secrets = a.secret.split(",").filter(Boolean);
  if (!secrets.length) throw new Error("--secret (or LIVEROOM_SECRETS) is required");
  const redisUrl = a.redis.split(",")[0];
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  const counter = pub.duplicate();
  for (const c of [pub, sub, counter]) c.on("error", (e) => console.error("redis:", e.message));
  await Promise.all([pub.connect(), sub.connect(), counter.connect()]);

  const server = http.createServer(async (req, res) => {
    if (req.url === "/healthz") {
      try {
        await counter.ping();
        res.writeHead(200).end("ok");
      } catch (e) {
        res.writeHead(503).end(String(e));
      }
    } else if (!req.url.startsWith("/socket.io/")) {
      res.writeHead(404).end();
    }
  });
  const io = new Server(server, {
    adapter: createAdapter(pub, sub, { key: "bench-node" }),
    transports: ["websocket"],
    serveClient: false,
    perMessageDeflate: false,
    cors: { origin: "*" },
  });
  const taps = new Map(); // room -> likes not yet added to Redis

  io.use((socket, next) => {
    const auth = socket.handshake.auth || {};
    try {
      const claims = verify(auth.token || "", secrets);
      const room = String(auth.room || "");
      if (!room) return next(new Error("bad_room"));
      socket.data.user = { id: claims.sub, name: claims.name || claims.sub };
      socket.data.room = room;
      next();
    } catch (e) {
      next(new Error("bad_token"));
    }
  });

  io.on("connection", (socket) => {
    const { user, room } = socket.data;
    socket.join(room);
    socket.on("comment", (data, ack) => {
      const text = String((data && data.text) || "").slice(0, 200);
      if (!text.trim()) {
        if (typeof ack === "function") ack({ ok: false, error: "empty" });
        return;
      }
      io.to(room).emit("comment", { type: "comment", user, text, ts: Date.now() });
      if (typeof ack === "function") ack({ ok: true });
    });
    socket.on("like", (data) => {
      const n = Number((data && data.n) || 1);
      if (Number.isInteger(n) && n >= 1 && n <= 50) taps.set(room, (taps.get(room) || 0) + n);
    });
  });

  setInterval(async () => {
    const todo = [...taps];
    taps.clear();
    for (const [room, n] of todo) {
      try {
        const total = await counter.incrBy(`bench-node:likes:${room}`, n);
        io.to(room).emit("likes", { total });
      } catch (e) {
        taps.set(room, (taps.get(room) || 0) + n); // Redis down: keep the taps for the next round
      }
    }
  }, LIKE_FLUSH_MS);

  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit(), counter.quit()]).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  server.listen(a.port, a.host, 4096);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
