// Compiled (not run) by test/types.test.js: the declarations in index.d.ts must describe the
// API as an app uses it, and refuse what the client does not have.
import WebSocket from "ws";
import {
  LiveRoom, LiveRoomError, jsonCodec, nodeSocket, wxSocket, type CommentEvent, type WelcomeFrame,
} from "liveroom-client";

declare const wx: unknown;

async function viewer(): Promise<void> {
  const room = new LiveRoom({ url: "ws://127.0.0.1:8080/ws", room: "demo", token: () => "jwt", socket: nodeSocket(WebSocket) });
  const welcome: WelcomeFrame = await room.connect();
  const online: number = welcome.state.online;
  room.on("comment", (ev: CommentEvent) => console.log(ev.user.name, ev.text, ev.seq, online));
  room.on("likes", (ev) => console.log(ev.total.toFixed(0)));
  room.on("draw_result", (ev) => console.log(ev.winners.map((w) => w.name), ev.seed));
  room.on("welcome", (w) => (w.recovered ? undefined : console.log("redraw", w.state.sales.length)));
  room.on("reconnecting", ({ attempt, delayMs }) => console.log(attempt, delayMs));
  room.on("close", (info) => console.log(info.reconnecting, info.bye?.reason));
  const off = room.on("error", (err) => console.log(err.code));
  off();
  const { seq } = await room.comment("hi");
  room.like();
  room.like(5);
  const bought = await room.buy("sale1", { qty: 1 });
  const order: string = bought.order;
  const again = await room.buy("sale1", { key: bought.key });
  console.log(seq, order, again.remaining);
  await room.joinDraw("d1");
  await room.report(3, "spam");
  try {
    await room.call("comment", { text: "x" }, { timeoutMs: 500 });
  } catch (err) {
    if (err instanceof LiveRoomError) console.log(err.code);
  }
  await room.close();
}

async function host(): Promise<void> {
  const room = new LiveRoom({ url: "wss://h/ws", room: "demo", token: "jwt", codec: jsonCodec, socket: wxSocket(wx) });
  await room.connect();
  await room.pin({ title: "Mug", price: 990 });
  await room.pin(null);
  await room.notice("welcome");
  const { sale } = await room.saleCreate({ sku: "s", title: "Mug", price: 990, stock: 10, limit: 1 });
  await room.saleClose(sale);
  const { draw } = await room.drawStart({ prize: "cup", winners: 1, mode: "keyword", keyword: "gift", duration_s: 30 });
  console.log(draw);
  await room.milestoneSet({ kind: "likes", every: 1000, reward: "coupon" });
  await room.mute("u1", 600);
  await room.mute("u1", { escalate: true });
  await room.deleteComment(4);
  await room.kick("u1");
  await room.ban("u1", -1);
  const live = await room.liveStart();
  await room.liveEnd(live.session);
  // @ts-expect-error: like takes a number of taps
  room.like("many");
  // @ts-expect-error: a sale needs its price
  await room.saleCreate({ sku: "s", title: "Mug", stock: 10, limit: 1 });
  // @ts-expect-error: a comment event has no total
  room.on("comment", (ev) => ev.total);
}

export { viewer, host };
