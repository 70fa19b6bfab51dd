// The demo viewer: one phone-shaped page per viewer, on the JS client (clients/js).
// ?room= the room, ?user= / ?name= who (a dev token is fetched), or ?token= a token of yours.
import { $, compact, devToken, el, money, openRoom, params, randomId, roomParam, toast, why } from "/static/common.js";

const room = roomParam();
const mine = params.get("user") || sessionStorage.getItem("lr-demo-user") || randomId("viewer-");
sessionStorage.setItem("lr-demo-user", mine);
const myName = params.get("name") || mine;

const ui = {
  online: $("#online"),
  likes: $("#likes"),
  comments: $("#comments"),
  pinned: $("#pinned"),
  sales: $("#sales"),
  draw: $("#draw"),
  status: $("#status"),
  live: $("#live-badge"),
};
$("#room-title").textContent = room;
document.title = `${room} · liveroom`;

let me = null; // welcome.user
let likesShown = 0; // what the counter shows (climbs towards likesTarget)
let likesTarget = 0;
const sales = new Map(); // id -> sale map (stock = remaining)
let draw = null; // the open draw map, or null
let drawJoined = false;
let drawTimer = null;

function status(text, kind = "") {
  ui.status.textContent = text;
  ui.status.className = "status " + kind;
}

// -- likes: the counter climbs to the room total ---------------------------------------------

function setLikes(total) {
  likesTarget = Math.max(likesTarget, total);
  if (!setLikes.running) climb();
}
function climb() {
  setLikes.running = likesShown < likesTarget;
  if (!setLikes.running) return;
  const step = Math.max(1, Math.ceil((likesTarget - likesShown) / 8));
  likesShown = Math.min(likesTarget, likesShown + step);
  ui.likes.textContent = compact(likesShown);
  requestAnimationFrame(climb);
}
function floatHeart() {
  const h = el("span", { class: "heart", text: "♥" });
  h.style.left = `${10 + Math.random() * 30}px`;
  h.style.setProperty("--hue", String(Math.floor(Math.random() * 60) + 320));
  $("#floaters").append(h);
  setTimeout(() => h.remove(), 1600);
}

// -- comments --------------------------------------------------------------------------

function addComment(ev) {
  const own = me && ev.user && ev.user.id === me.id;
  const li = el(
    "li",
    { class: "comment" + (ev.host ? " host" : "") + (own ? " own" : ""), "data-seq": ev.seq, "data-testid": ev.host ? "host-comment" : "comment" },
    ev.host ? el("span", { class: "tag", text: "HOST" }) : null,
    el("span", { class: "who", text: (ev.user && ev.user.name) || "?" }),
    el("span", { class: "text", text: ev.text }),
  );
  if (!own && !ev.host && me && !String(me.id).startsWith("anon:")) {
    li.append(el("button", { class: "report", title: "report this comment", text: "⚑", onclick: () => report(ev.seq, li) }));
  }
  ui.comments.append(li);
  while (ui.comments.children.length > 200) ui.comments.firstChild.remove();
  ui.comments.scrollTop = ui.comments.scrollHeight;
}

function systemLine(text, kind = "system") {
  ui.comments.append(el("li", { class: `comment ${kind}`, "data-testid": kind, text }));
  ui.comments.scrollTop = ui.comments.scrollHeight;
}

async function report(seq, li) {
  try {
    await lr.report(seq, "inappropriate");
    li.classList.add("reported");
    toast("Reported. Thank you.", "info", 2000);
  } catch (err) {
    toast(why(err), "error");
  }
}

// -- pinned product and sales -------------------------------------------------------------

function showPinned(product) {
  ui.pinned.replaceChildren();
  if (!product) {
    ui.pinned.classList.add("hidden");
    return;
  }
  ui.pinned.classList.remove("hidden");
  ui.pinned.append(
    el("div", { class: "thumb", text: String(product.title || product.sku || "?").slice(0, 1).toUpperCase() }),
    el(
      "div",
      { class: "pinned-body" },
      el("div", { class: "pinned-title", "data-testid": "pinned-title", text: product.title || product.name || product.sku || "product" }),
      product.price !== undefined ? el("div", { class: "price", text: money(product.price) }) : null,
    ),
  );
}

function saleOpen(s) {
  return s.status === "open" || s.status === "scheduled";
}

function drawSales() {
  ui.sales.replaceChildren();
  for (const s of sales.values()) {
    if (s.status === "closed" || s.status === "ended") continue;
    const soldOut = s.status === "sold_out" || s.stock <= 0;
    const initial = s.initial || s.stock || 1;
    const pct = Math.max(0, Math.min(100, (100 * s.stock) / initial));
    const btn = el("button", { class: "grab", "data-testid": "grab", disabled: soldOut || !saleOpen(s), text: soldOut ? "Sold out" : s.status === "scheduled" ? "Soon" : "Grab" });
    btn.addEventListener("click", () => buy(s, btn));
    ui.sales.append(
      el(
        "div",
        { class: "sale" + (soldOut ? " sold-out" : ""), "data-sale": s.id, "data-testid": "sale" },
        el("div", { class: "sale-top" }, el("span", { class: "flash", text: "⚡ FLASH" }), el("span", { class: "sale-title", text: s.title })),
        el(
          "div",
          { class: "sale-mid" },
          el("span", { class: "price big", text: s.price ? money(s.price) : "FREE" }),
          el("span", { class: "stock", "data-testid": "stock", text: soldOut ? "sold out" : `${s.stock} left` }),
        ),
        el("div", { class: "bar" }, el("div", { class: "fill", style: `width:${pct}%` })),
        btn,
        s.bought ? el("div", { class: "bought", "data-testid": "bought", text: `✓ ordered ${s.bought}` }) : null,
      ),
    );
  }
}

async function buy(s, btn) {
  btn.disabled = true;
  try {
    const r = await lr.buy(s.id); // one unit, a fresh idempotency key
    s.bought = (s.bought || 0) + 1;
    if (typeof r.remaining === "number") s.stock = Math.min(s.stock, r.remaining);
    toast("Ordered! Pay for it in the shop", "ok");
  } catch (err) {
    if (err.code === "sold_out") s.status = "sold_out";
    toast(why(err), "error");
  }
  drawSales();
}

// -- draws ------------------------------------------------------------------------------

function showDraw() {
  clearInterval(drawTimer);
  ui.draw.replaceChildren();
  if (!draw) {
    ui.draw.classList.add("hidden");
    return;
  }
  ui.draw.classList.remove("hidden");
  const count = el("span", { class: "countdown", "data-testid": "countdown" });
  const tick = () => {
    const left = Math.max(0, Math.ceil((draw.ends_at - Date.now()) / 1000));
    count.textContent = left > 0 ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` : "drawing…";
  };
  tick();
  drawTimer = setInterval(tick, 250);
  let action;
  if (draw.mode === "keyword") {
    action = el("button", { class: "join", "data-testid": "join-draw", text: `Comment “${draw.keyword}”`, onclick: () => lr.comment(draw.keyword).catch((e) => toast(why(e), "error")) });
  } else if (draw.mode === "online") {
    action = el("div", { class: "hint", text: "Stay in the room to enter" });
  } else if (drawJoined) {
    action = el("div", { class: "joined", "data-testid": "joined", text: "✓ You're in" });
  } else {
    action = el("button", { class: "join", "data-testid": "join-draw", text: "Join the draw", onclick: joinDraw });
  }
  ui.draw.append(
    el("div", { class: "draw-top" }, el("span", { text: "★ Lucky draw" }), count),
    el("div", { class: "prize", "data-testid": "prize", text: `${draw.prize} × ${draw.winners}` }),
    action,
  );
}

async function joinDraw() {
  try {
    await lr.joinDraw(draw.id);
    drawJoined = true;
  } catch (err) {
    toast(why(err), "error");
  }
  showDraw();
}

function revealWinners(ev) {
  clearInterval(drawTimer);
  const prize = draw && draw.id === ev.draw ? draw.prize : "the prize";
  draw = null;
  const won = me && ev.winners.some((w) => w.id === me.id);
  ui.draw.classList.remove("hidden");
  const list = el("ul", { class: "winners", "data-testid": "winners" });
  ev.winners.forEach((w, i) => {
    const li = el("li", { class: w.id === (me && me.id) ? "me" : "", text: w.name || w.id });
    li.style.animationDelay = `${i * 120}ms`;
    list.append(li);
  });
  ui.draw.replaceChildren(
    el("div", { class: "draw-top" }, el("span", { text: won ? "★ You won! ★" : "★ Winners" }), el("span", { class: "entrants", text: `${ev.entrants} entered` })),
    el("div", { class: "prize", text: prize }),
    ev.winners.length ? list : el("div", { class: "hint", text: "nobody entered" }),
  );
  ui.draw.classList.toggle("won", !!won);
  setTimeout(() => {
    if (!draw) ui.draw.classList.add("hidden");
  }, 15000);
}

// -- the room ---------------------------------------------------------------------------

let lr;

async function token() {
  if (params.get("token")) return params.get("token");
  try {
    return await devToken({ sub: mine, name: myName, role: "viewer", room });
  } catch (err) {
    status("no token (" + why(err) + "): watching anonymously", "warn");
    return undefined;
  }
}

function welcome(w) {
  me = w.user;
  const st = w.state || {};
  ui.online.textContent = compact(st.online);
  likesTarget = 0;
  setLikes(st.likes || 0);
  showPinned(st.pinned);
  const bought = new Map([...sales].map(([id, s]) => [id, s.bought]));
  sales.clear();
  for (const s of st.sales || []) sales.set(s.id, { ...s, bought: bought.get(s.id) });
  drawSales();
  if (!draw || !st.draw || st.draw.id !== draw.id) drawJoined = false;
  draw = st.draw || null;
  showDraw();
  setLive(st.live ? "live" : "ended");
  status(`${me.name} · ${w.recovered ? "resumed" : "connected"}`, "ok");
}

function setLive(s) {
  ui.live.textContent = s === "live" ? "LIVE" : "offline";
  ui.live.className = "badge " + (s === "live" ? "on" : "off");
}

async function main() {
  lr = openRoom(room, token);
  lr.on("welcome", welcome);
  lr.on("comment", addComment);
  lr.on("comment_deleted", (ev) => {
    const li = ui.comments.querySelector(`[data-seq="${ev.comment}"]`);
    if (li) li.remove();
  });
  lr.on("likes", (ev) => setLikes(ev.total));
  lr.on("online", (ev) => (ui.online.textContent = compact(ev.count)));
  lr.on("pin", (ev) => showPinned(ev.product));
  lr.on("notice", (ev) => {
    systemLine(ev.text, "notice");
    toast(ev.text, "notice");
  });
  lr.on("sale", (ev) => {
    const old = sales.get(ev.sale.id);
    sales.set(ev.sale.id, { ...ev.sale, bought: old && old.bought });
    drawSales();
  });
  lr.on("stock", (ev) => {
    const s = sales.get(ev.sale);
    if (!s) return;
    s.stock = ev.remaining;
    drawSales();
  });
  lr.on("sold_out", (ev) => {
    const s = sales.get(ev.sale);
    if (!s) return;
    s.status = "sold_out";
    s.stock = 0;
    drawSales();
  });
  lr.on("draw_started", (ev) => {
    draw = ev.draw;
    drawJoined = false;
    ui.draw.classList.remove("won");
    showDraw();
  });
  lr.on("draw_result", revealWinners);
  lr.on("milestone", (ev) => {
    const what = ev.kind === "likes" ? `${compact(ev.value)} likes` : `${compact(ev.value)} watching`;
    toast(`★ ${what}!${ev.reward ? " " + ev.reward : ""}`, "milestone", 6000);
    systemLine(`★ ${what}!${ev.reward ? " " + ev.reward : ""}`, "milestone");
  });
  lr.on("live", (ev) => {
    setLive(ev.status);
    systemLine(ev.status === "live" ? "The live session has started" : "The live session has ended");
  });
  lr.on("bye", (f) => status(`disconnected: ${f.reason}` + (f.reconnect ? ", reconnecting…" : ""), "warn"));
  lr.on("reconnecting", () => status("reconnecting…", "warn"));

  $("#like").addEventListener("click", () => {
    lr.like();
    likesTarget += 1;
    setLikes(likesTarget);
    floatHeart();
  });
  $("#say").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("#say-text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    try {
      await lr.comment(text);
    } catch (err) {
      toast(why(err), "error");
      input.value = text;
    }
  });

  try {
    await lr.connect();
  } catch (err) {
    status("could not join: " + why(err), "error");
  }
}

main();
