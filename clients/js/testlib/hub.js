// A real Redis and real hubs for the client's tests: spawned here, stopped after.
// LIVEROOM_PYTHON (the Python with liveroom installed; default <repo>/.venv/bin/python) and
// LIVEROOM_REDIS_SERVER (default redis-server on PATH) say which programs to run.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
// the test suite's secret (tests/support.py): never valid outside loopback
export const SECRET = "test-secret-0123456789abcdef0123456789abcdef";
const FACTOR = Number(process.env.LIVEROOM_TEST_TIMEOUT_FACTOR || "1");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait until `cond()` is truthy (polled), or fail saying `what`. */
export async function eventually(cond, what = "condition", timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs * FACTOR;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function b64url(buf) {
  return Buffer.from(buf).toString("base64url");
}

/** An HS256 JWT as the hub expects (PROTOCOL.md "Auth"), signed with node:crypto. */
export function token(sub, { role = "viewer", rooms, name, ttlS = 3600 } = {}) {
  const claims = { sub, name: name || sub, role, exp: Math.floor(Date.now() / 1000) + ttlS };
  if (rooms) claims.rooms = rooms;
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const sig = b64url(createHmac("sha256", SECRET).update(`${head}.${body}`).digest());
  return `${head}.${body}.${sig}`;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let got = "";
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      got += d;
      if (got.includes("\r\n")) {
        s.destroy();
        resolve(got.startsWith("+PONG"));
      }
    });
    s.on("error", () => resolve(false));
  });
}

function exited(proc) {
  return proc.exitCode !== null || proc.signalCode !== null;
}

function waitExit(proc, ms) {
  if (exited(proc)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    proc.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A throwaway Redis: nothing on disk, loopback only. */
export async function startRedis() {
  const port = await freePort();
  const bin = process.env.LIVEROOM_REDIS_SERVER || "redis-server";
  const proc = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  await eventually(async () => {
    if (exited(proc)) throw new Error(`${bin} exited`);
    return redisPing(port);
  }, "redis to answer PING", 10_000);
  return {
    url: `redis://127.0.0.1:${port}/0`,
    async stop() {
      proc.kill("SIGKILL");
      await waitExit(proc, 5000);
    },
  };
}

/** `liveroom serve` configured through the environment only, as tests/support.py does. */
export class Hub {
  constructor(redisUrl, env = {}) {
    this.redisUrl = redisUrl;
    this.env = env;
    this.port = 0;
    this.proc = null;
    this.dir = mkdtempSync(path.join(tmpdir(), "liveroom-js-hub-"));
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  log() {
    try {
      return readFileSync(path.join(this.dir, "hub.log"), "utf8");
    } catch {
      return "";
    }
  }

  async start() {
    this.port = this.port || (await freePort());
    const python = process.env.LIVEROOM_PYTHON || path.join(REPO, ".venv/bin/python");
    const out = openSync(path.join(this.dir, "hub.log"), "a");
    this.proc = spawn(python, ["-m", "liveroom", "serve", "--workers", "1"], {
      cwd: REPO,
      stdio: ["ignore", out, out],
      env: {
        ...process.env,
        LIVEROOM_HOST: "127.0.0.1",
        LIVEROOM_PORT: String(this.port),
        LIVEROOM_REDIS: this.redisUrl,
        LIVEROOM_SECRETS: SECRET,
        LIVEROOM_IMPLICIT_ROOMS: "1",
        LIVEROOM_MAX_ANON_PER_IP: "0",
        LIVEROOM_MAX_ANON_ROOMS_PER_IP: "0",
        LIVEROOM_LOG: "INFO",
        ...this.env,
      },
    });
    const proc = this.proc;
    await eventually(async () => {
      if (exited(proc)) throw new Error(`hub exited:\n${this.log()}`);
      try {
        const r = await fetch(this.base + "/healthz");
        return r.status === 200;
      } catch {
        return false;
      }
    }, "the hub's /healthz", 20_000);
    return this;
  }

  /** SIGTERM: the hub says `bye draining` to its viewers and exits. */
  async stop() {
    if (!this.proc || exited(this.proc)) return;
    this.proc.kill("SIGTERM");
    if (!(await waitExit(this.proc, 15_000 * FACTOR))) {
      this.proc.kill("SIGKILL");
      await waitExit(this.proc, 5000);
    }
  }

  async cleanup() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
