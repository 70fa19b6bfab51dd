// The host console: host ops over the WebSocket (the JS client), the HTTP API for what has no
// op (figures, reports, the word filter, session timelines), and uPlot charts per minute.
// ?room= the room; a pasted host token, or one from GET /dev/token when the hub serves it.
import { $, compact, devToken, el, money, openRoom, params, randomId, toast, why } from "/static/common.js";

const uPlot = window.uPlot; // vendored IIFE build (static/vendor/uplot)

let room = params.get("room") || "demo";
let tok = params.get("token") || "";
let lr = null;
let session = null; // the live session id, or null
let chartSession = null; // the session the charts show (the live one, else the latest)
let timers = [];
const sales = new Map();
let openDraw = null;
const charts = {};

$("#room").value = room;
$("#token").value = tok;

function conn(text, kind = "") {
  $("#conn").textContent = text;
  $("#conn").className = "conn " + kind;
}

/** The HTTP API with the host token; rejects with the hub's error code. */
async function api(method, path, body) {
  const r = await fetch(`/api/rooms/${encodeURIComponent(room)}${path}`, {
    method,
    headers: { Authorization: `Bearer ${tok}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = new Error((data.error && data.error.message) || r.statusText);
    e.code = (data.error && data.error.code) || String(r.status);
    throw e;
  }
  return data;
}

/** Run a host op over the socket; toast the error. */
async function op(name, fields, done) {
  try {
    const r = await lr.call(name, fields);
    if (done) toast(done, "ok", 2000);
    return r;
  } catch (err) {
    toast(`${name}: ${why(err)}`, "error");
    return null;
  }
}

// -- figures ----------------------------------------------------------------------------

function setFig(id, v) {
  $(id).textContent = v;
}

async function refreshFigures() {
  try {
    const s = await api("GET", "");
    setFig("#f-online", compact(s.online));
    setFig("#f-peak", compact(s.peak_online));
    setFig("#f-likes", compact(s.likes));
    setFig("#f-comments", compact(s.comments));
    setFig("#f-orders", compact(s.orders.confirmed + s.orders.pending));
    setFig("#f-gmv", money(s.gmv.confirmed + s.gmv.pending));
    $("#f-orders").title = `${s.orders.confirmed} paid, ${s.orders.pending} pending`;
    $("#f-gmv").title = `${money(s.gmv.confirmed)} paid, ${money(s.gmv.pending)} pending`;
    for (const sale of s.sales || []) {
      if (!sales.has(sale.id)) sales.set(sale.id, sale);
    }
  } catch (err) {
    if (err.code !== "no_such_room") conn(`figures: ${why(err)}`, "error");
  }
}

// -- charts (uPlot) ------------------------------------------------------------------------

function chartOpts(title, series, width) {
  return {
    title,
    width,
    height: 150,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, Math.ceil(max * 1.15))] } },
    axes: [
      { stroke: "#9aa1b2", grid: { stroke: "#2a2f3d" } },
      { stroke: "#9aa1b2", grid: { stroke: "#2a2f3d" }, size: 50 },
    ],
    series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2, fill: stroke + "22", points: { show: true, size: 4 } }))],
  };
}

function drawCharts(timeline) {
  // a session's first minutes are one or two points: the axis spans 10 minutes at least (empty minutes to come)
  const xs = timeline.map((m) => Math.floor(m.t / 1000));
  const start = xs.length ? xs[0] : Math.floor(Date.now() / 60000) * 60;
  while (xs.length < 10) xs.push(start + 60 * xs.length);
  const col = (f) => xs.map((_, i) => (i < timeline.length ? f(timeline[i]) : null));
  const data = {
    online: [xs, col((m) => m.online)],
    talk: [xs, col((m) => m.comments), col((m) => m.likes)],
    sales: [xs, col((m) => m.orders), col((m) => m.gmv / 100)],
  };
  const width = Math.max(300, $("#chart-online").parentElement.clientWidth - 24);
  const specs = {
    online: ["Online (peak of the minute)", [["online", "#2fd08c"]]],
    talk: ["Comments and likes", [["comments", "#5aa9ff"], ["likes", "#ff3d6e"]]],
    sales: ["Orders and sales amount (¥)", [["orders", "#ffc23d"], ["¥", "#c58bff"]]],
  };
  for (const [key, [title, series]] of Object.entries(specs)) {
    if (!charts[key]) charts[key] = new uPlot(chartOpts(title, series, width), data[key], $(`#chart-${key}`));
    else charts[key].setData(data[key]);
  }
}

async function refreshCharts() {
  if (!chartSession) return;
  try {
    const { session: s } = await api("GET", `/sessions/${chartSession}`);
    $("#charts-note").textContent = `session ${s.session} · ${s.status} · ${s.viewers} viewers · ${s.draws} draws`;
    drawCharts(s.timeline);
  } catch (err) {
    $("#charts-note").textContent = `session ${chartSession}: ${why(err)}`;
  }
}

async function latestSession() {
  try {
    const { sessions } = await api("GET", "/sessions?count=1");
    return sessions.length ? sessions[0].session : null;
  } catch {
    return null;
  }
}

// -- live session ---------------------------------------------------------------------------

let liveShown = 0; // bumped by every showLive: a late answer about an older state is dropped

function showLive(id, status) {
  liveShown += 1;
  session = status === "live" ? id : null;
  $("#live-state").textContent = status === "live" ? `LIVE · ${id}` : id ? `ended · ${id}` : "not live";
  $("#live-state").style.color = status === "live" ? "var(--accent)" : "";
  if (id) chartSession = id;
  refreshCharts();
}

// -- sales and draws -----------------------------------------------------------------------

function drawSales() {
  const ul = $("#sales");
  ul.replaceChildren();
  for (const s of [...sales.values()].reverse()) {
    const done = s.status === "closed" || s.status === "ended";
    ul.append(
      el(
        "li",
        { "data-sale": s.id },
        el("span", { class: `pill ${s.status}`, text: s.status }),
        el("span", { class: "grow", text: `${s.title} · ${money(s.price)}` }),
        el("span", { "data-testid": "sale-stock-left", text: `${s.stock}/${s.initial || s.stock} left` }),
        done ? null : el("button", { text: "Close", onclick: () => op("sale_close", { sale: s.id }, "sale closed") }),
      ),
    );
  }
}

function showDraw(text) {
  $("#draw-state").textContent = text;
}

// -- comments feed and moderation -----------------------------------------------------------

function modButtons(user, seq) {
  return [
    seq !== undefined ? el("button", { text: "Delete", title: "delete this comment", onclick: () => op("delete_comment", { seq }, "deleted") }) : null,
    el("button", { text: "Mute ↑", title: "mute: the user's next step on the ladder (a day, a week, 15 days, forever)", onclick: () => mute(user) }),
    el("button", { text: "Kick", onclick: () => op("kick", { user: user.id }, `${user.name} kicked`) }),
    el("button", { class: "danger", text: "Ban", onclick: () => op("ban", { user: user.id, seconds: -1 }, `${user.name} banned`) }),
  ];
}

async function mute(user) {
  const r = await op("mute", { user: user.id, escalate: true });
  if (r) toast(`${user.name} muted ${r.until === -1 ? "for good" : "until " + new Date(r.until).toLocaleString()} (step ${r.step})`, "ok");
}

function addToFeed(ev) {
  const li = el(
    "li",
    { class: ev.host ? "host" : "", "data-seq": ev.seq },
    el("span", { class: "grow", title: ev.user.id, text: `${ev.user.name}: ${ev.text}` }),
    ...(ev.host ? [] : modButtons(ev.user, ev.seq)),
  );
  const feed = $("#feed");
  feed.prepend(li);
  while (feed.children.length > 100) feed.lastChild.remove();
}

async function refreshReports() {
  let reports;
  try {
    reports = (await api("GET", "/reports")).reports;
  } catch {
    return;
  }
  const ul = $("#reports");
  ul.replaceChildren();
  if (!reports.length) ul.append(el("li", { class: "small", text: "nothing reported" }));
  for (const r of reports) {
    const user = r.user || { id: "?", name: "?" };
    const resolve = (action, extra = {}) => async () => {
      try {
        await api("POST", `/reports/${r.seq}/resolve`, { action, ...extra });
        toast(`report ${r.seq}: ${action}`, "ok", 2000);
      } catch (err) {
        toast(why(err), "error");
      }
      refreshReports();
    };
    ul.append(
      el(
        "li",
        { "data-testid": "report", "data-seq": r.seq },
        el("span", { class: "pill", text: `×${r.reports}` }),
        el("span", { class: "grow", title: (r.reasons || []).join(", "), text: `${user.name}: ${r.text ?? "(gone)"}` }),
        el("button", { text: "Dismiss", onclick: resolve("dismiss") }),
        el("button", { text: "Delete", onclick: resolve("delete") }),
        el("button", { text: "Mute ↑", onclick: resolve("mute", { escalate: true }) }),
        el("button", { text: "Kick", onclick: async () => (await op("kick", { user: user.id }, "kicked")) && resolve("dismiss")() }),
        el("button", { class: "danger", text: "Ban", onclick: resolve("ban", { seconds: -1 }) }),
      ),
    );
  }
}

async function loadWords() {
  try {
    const w = await api("GET", "/words");
    $("#words").value = (w.words || []).join("\n");
    $("#words-action").value = w.action || "refuse";
    $("#words-contacts").checked = !!w.contacts;
  } catch (err) {
    $("#words-state").textContent = why(err);
  }
}

async function saveWords() {
  const words = $("#words").value.split("\n").map((w) => w.trim()).filter(Boolean);
  try {
    await api("PUT", "/words", { words, action: $("#words-action").value, contacts: $("#words-contacts").checked });
    $("#words-state").textContent = `saved ${words.length} word(s)`;
  } catch (err) {
    $("#words-state").textContent = why(err);
  }
}

async function refreshMilestones() {
  try {
    const { milestones } = await api("GET", "/milestones");
    $("#milestones").replaceChildren(
      ...milestones.map((m) =>
        el("li", {}, el("span", { class: "grow", text: `${m.kind} ${m.every ? "every " + m.every : "at " + m.value}${m.reward ? " · " + m.reward : ""}` }),
          el("button", { text: "Remove", onclick: async () => (await op("milestone_remove", { milestone: m.id })) !== null && refreshMilestones() })),
      ),
    );
  } catch {
    /* not created yet */
  }
}

// -- forms -----------------------------------------------------------------------------------

function form(id, fn) {
  $(id).addEventListener("submit", (e) => {
    e.preventDefault();
    if (!lr) return toast("connect first", "error");
    fn(Object.fromEntries(new FormData(e.target)));
  });
}

const cents = (yuan) => Math.round(Number(yuan || 0) * 100);

form("#pin-form", (f) => op("pin", { product: { title: f.title, price: cents(f.price), sku: randomId("p") } }, "pinned"));
$("#unpin").addEventListener("click", () => lr && op("pin", { product: null }, "unpinned"));
form("#sale-form", (f) => {
  const now = Date.now();
  op("sale_create", { sku: f.sku || randomId("sku"), title: f.title, price: cents(f.price), stock: Number(f.stock), limit: Number(f.limit), starts_at: now, ends_at: now + Number(f.minutes) * 60000 }, "sale open");
});
form("#draw-form", (f) => {
  const d = { prize: f.prize, winners: Number(f.winners), mode: f.mode, duration_s: Number(f.duration) };
  if (f.mode === "keyword") d.keyword = f.keyword;
  op("draw_start", d, "draw started");
});
form("#milestone-form", async (f) => {
  const r = await op("milestone_set", { kind: f.kind, every: Number(f.every), reward: f.reward || null }, "milestone set");
  if (r) refreshMilestones();
});
form("#notice-form", (f) => op("notice", { text: f.text }, "notice posted"));
form("#say-form", (f) => lr.comment(f.text).catch((err) => toast(why(err), "error")));
$("#live-start").addEventListener("click", async () => {
  const r = lr && (await op("live_start", {}));
  if (r) showLive(r.session, "live");
});
$("#live-end").addEventListener("click", async () => {
  const r = lr && (await op("live_end", {}));
  if (r) showLive(r.session, "ended");
});
$("#words-save").addEventListener("click", saveWords);

// -- connecting ------------------------------------------------------------------------------

let devMinted = ""; // the last token from /dev/token: while it is the one in use, reconnects fetch a fresh one
const devWho = () => ({ sub: params.get("user") || "host", name: params.get("name") || "Host", role: "host", room });

$("#dev-token").addEventListener("click", async () => {
  room = $("#room").value.trim() || room;
  try {
    devMinted = $("#token").value = await devToken(devWho());
    conn("dev token ready", "ok");
  } catch (err) {
    conn(why(err), "error");
  }
});

/** The token for each connection attempt: a pasted one as it is; a dev token renewed after
 * the first attempt (it lives 30 minutes; the hub ends a socket whose token expired). */
function tokenSource() {
  if (!devMinted || tok !== devMinted) return tok;
  let first = true;
  return async () => {
    if (!first) devMinted = tok = $("#token").value = await devToken(devWho());
    first = false;
    return tok;
  };
}

$("#connect").addEventListener("click", connect);

async function connect() {
  room = $("#room").value.trim() || "demo";
  tok = $("#token").value.trim();
  if (!tok) return conn("paste a host token, or press Dev token", "error");
  history.replaceState(null, "", `?room=${encodeURIComponent(room)}`);
  if (lr) lr.close();
  timers.forEach(clearInterval);
  sales.clear();
  $("#feed").replaceChildren();
  lr = openRoom(room, tokenSource());
  lr.on("welcome", (w) => {
    if (w.user.role !== "host" && w.user.role !== "admin") conn(`signed in as ${w.user.name}, but not a host of ${room}`, "error");
    else conn(`${w.user.name} · host of ${room}`, "ok");
    const st = w.state;
    setFig("#f-online", compact(st.online));
    setFig("#f-likes", compact(st.likes));
    for (const s of st.sales || []) sales.set(s.id, s);
    drawSales();
    openDraw = st.draw;
    showDraw(openDraw ? `open: ${openDraw.prize} × ${openDraw.winners} (${openDraw.mode}), ends ${new Date(openDraw.ends_at).toLocaleTimeString()}` : "no draw");
    if (st.live) showLive(st.live.session, "live");
    else {
      // the last ended session, for its charts; unless the live state moved meanwhile (a
      // live_start answered, a `live` event) while this request was out
      const asked = liveShown;
      latestSession().then((id) => asked === liveShown && showLive(id, "ended"));
    }
  });
  lr.on("comment", addToFeed);
  lr.on("comment_deleted", (ev) => {
    const li = $(`#feed [data-seq="${ev.comment}"]`);
    if (li) li.remove();
  });
  lr.on("online", (ev) => setFig("#f-online", compact(ev.count)));
  lr.on("likes", (ev) => setFig("#f-likes", compact(ev.total)));
  lr.on("sale", (ev) => {
    sales.set(ev.sale.id, ev.sale);
    drawSales();
  });
  lr.on("stock", (ev) => {
    const s = sales.get(ev.sale);
    if (s) {
      s.stock = ev.remaining;
      drawSales();
    }
  });
  lr.on("sold_out", (ev) => {
    const s = sales.get(ev.sale);
    if (s) {
      s.status = "sold_out";
      s.stock = 0;
      drawSales();
    }
  });
  lr.on("draw_started", (ev) => {
    openDraw = ev.draw;
    showDraw(`open: ${ev.draw.prize} × ${ev.draw.winners} (${ev.draw.mode}), ends ${new Date(ev.draw.ends_at).toLocaleTimeString()}`);
  });
  lr.on("draw_result", (ev) => {
    openDraw = null;
    showDraw(`winners of ${ev.draw}: ${ev.winners.map((w) => w.name).join(", ") || "nobody"} (${ev.entrants} entered)`);
  });
  lr.on("milestone", (ev) => toast(`milestone: ${ev.value} ${ev.kind}${ev.reward ? " · " + ev.reward : ""}`, "milestone"));
  lr.on("live", (ev) => showLive(ev.session, ev.status));
  lr.on("bye", (f) => conn(`bye: ${f.reason}`, "error"));
  lr.on("reconnecting", () => conn("reconnecting…", "error"));
  conn("connecting…");
  try {
    await lr.connect();
  } catch (err) {
    conn(`could not join: ${why(err)}`, "error");
    return;
  }
  refreshFigures();
  refreshReports();
  refreshMilestones();
  loadWords();
  timers = [setInterval(refreshFigures, 2000), setInterval(refreshReports, 3000), setInterval(refreshCharts, 5000)];
}

// without GET /dev/token (LIVEROOM_DEV_TOKENS off) the console takes a pasted token only
fetch("/dev/token", { method: "HEAD", cache: "no-store" }).then((r) => {
  if (r.status === 404) {
    $("#dev-token").classList.add("hidden");
    if (!tok) conn("paste a host token for the room (liveroom token --role host --rooms ROOM --sub you)");
  }
});

if (tok) connect();
