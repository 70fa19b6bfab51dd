// What the demo viewer and the host console share: the query string, tokens from
// /dev/token, the hub's WebSocket URL, the JS client, and a few formatters.
import { LiveRoom } from "/static/client/index.js";

export const params = new URLSearchParams(location.search);

/** The room of the page: ?room=, else "demo". */
export function roomParam() {
  return params.get("room") || "demo";
}

/** ws://host/ws or wss://host/ws, for the hub that served this page. */
export function wsUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}

/** A token signed by the hub's GET /dev/token (served only when LIVEROOM_DEV_TOKENS=1);
 * throws with the hub's message otherwise. */
export async function devToken({ sub, name, role = "viewer", room }) {
  const q = new URLSearchParams({ sub, role, rooms: room });
  if (name) q.set("name", name);
  const r = await fetch("/dev/token?" + q, { cache: "no-store" });
  if (!r.ok) {
    let msg = `GET /dev/token: ${r.status}`;
    try {
      const body = await r.json();
      if (body.error) msg += ` ${body.error.code}: ${body.error.message}`;
    } catch {
      msg += r.status === 404 ? " (start the hub with LIVEROOM_DEV_TOKENS=1)" : "";
    }
    throw new Error(msg);
  }
  return (await r.json()).token;
}

/** A LiveRoom on this hub; `token` may be a string or a function returning a promise of one
 * (called before every connection attempt, so a reconnect after `bye expired` gets a fresh one). */
export function openRoom(room, token) {
  return new LiveRoom({ url: wsUrl(), room, token });
}

export function randomId(prefix) {
  const a = new Uint8Array(4);
  crypto.getRandomValues(a);
  return prefix + Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Cents as "¥12.50". */
export function money(cents) {
  return "¥" + (Number(cents || 0) / 100).toFixed(2);
}

/** 1234567 as "1.2M", 12345 as "12.3k": counters that climb fast stay readable. */
export function compact(n) {
  n = Number(n || 0);
  if (n >= 1e6) return (n / 1e6).toFixed(1).replace(/\.0$/, "") + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1).replace(/\.0$/, "") + "k";
  return String(n);
}

/** `el("div", {class: "x", text: "hi"}, child...)`: small DOM builder; text never parsed as HTML. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function $(sel, root = document) {
  return root.querySelector(sel);
}

/** A short message that fades out (milestones, notices, errors). */
export function toast(text, kind = "info", ms = 4000) {
  let box = $("#toasts");
  if (!box) {
    box = el("div", { id: "toasts" });
    document.body.append(box);
  }
  const t = el("div", { class: `toast ${kind}`, "data-testid": `toast-${kind}`, text });
  box.append(t);
  setTimeout(() => t.classList.add("gone"), ms);
  setTimeout(() => t.remove(), ms + 600);
}

/** The error of a rejected call as one line ("sold_out: sold out"). */
export function why(err) {
  const msg = String((err && err.message) || err);
  return err && err.code && !msg.startsWith(err.code) ? `${err.code}: ${msg}` : msg; // the client's errors start with the code
}
