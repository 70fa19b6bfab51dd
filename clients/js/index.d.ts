// Type declarations for liveroom-client, written by hand after ../../shared/PROTOCOL.md
// (v1.1) and docs/protocol.md. Field names are the wire's: snake_case.

// -- values -----------------------------------------------------------------------------

export interface User {
  id: string;
  name: string;
}

export interface Me extends User {
  role: "viewer" | "host" | "shop" | "admin";
}

export type Product = { [key: string]: unknown };

export interface Sale {
  id: string;
  sku: string;
  title: string;
  /** cents */
  price: number;
  /** what remains */
  stock: number;
  /** the stock the sale opened with */
  initial?: number;
  /** per user */
  limit: number;
  /** ms since the Unix epoch; 0: no bound */
  starts_at: number;
  ends_at: number;
  status: "scheduled" | "open" | "sold_out" | "closed" | "ended";
}

export interface Draw {
  id: string;
  prize: string;
  winners: number;
  mode: "join" | "keyword" | "online";
  keyword: string | null;
  ends_at: number;
  /** sha256(seed) in hex: check it against draw_result's seed */
  commit: string;
}

export interface RoomState {
  online: number;
  likes: number;
  pinned: Product | null;
  sales: Sale[];
  draw: Draw | null;
  live: { session: string; started_at: number } | null;
}

// -- server frames ----------------------------------------------------------------------

export interface ProtocolError {
  code: string;
  message: string;
}

export interface WelcomeFrame {
  t: "welcome";
  room: string;
  user: Me;
  epoch: string;
  /** the room's last durable seq, as of `state` */
  seq: number;
  state: RoomState;
  /** true: the resume was honoured and the missed events follow; false: redraw from `state` */
  recovered: boolean;
}

export interface BatchFrame {
  t: "batch";
  room: string;
  events: RoomEvent[];
  /** comments this viewer was not sent in this batch (per-viewer cap, slow connection) */
  dropped?: number;
}

export interface ReplyFrame {
  t: "reply";
  id: number;
  ok: boolean;
  error?: ProtocolError;
  [field: string]: unknown;
}

export interface ErrorFrame {
  t: "error";
  error: ProtocolError;
}

export interface PongFrame {
  t: "pong";
  id?: number;
}

export interface ByeFrame {
  t: "bye";
  reason: "draining" | "kicked" | "banned" | "slow" | "too_large" | "abuse" | "expired" | "unavailable" | string;
  reconnect: boolean;
  /** a hint: wait at least this long before reconnecting (optional) */
  retry_ms?: number;
}

// -- events (inside batch.events) -------------------------------------------------------

export interface CommentEvent {
  type: "comment";
  seq: number;
  user: User;
  text: string;
  ts: number;
  /** true on the host's comments */
  host?: boolean;
}
export interface CommentDeletedEvent {
  type: "comment_deleted";
  seq: number;
  /** the seq of the deleted comment */
  comment: number;
}
export interface LikesEvent {
  type: "likes";
  total: number;
}
export interface OnlineEvent {
  type: "online";
  count: number;
}
export interface PinEvent {
  type: "pin";
  seq: number;
  product: Product | null;
}
export interface NoticeEvent {
  type: "notice";
  seq: number;
  text: string;
}
export interface SaleEvent {
  type: "sale";
  seq: number;
  sale: Sale;
}
export interface StockEvent {
  type: "stock";
  sale: string;
  remaining: number;
}
export interface SoldOutEvent {
  type: "sold_out";
  seq: number;
  sale: string;
}
export interface DrawStartedEvent {
  type: "draw_started";
  seq: number;
  draw: Draw;
}
export interface DrawResultEvent {
  type: "draw_result";
  seq: number;
  draw: string;
  winners: User[];
  entrants: number;
  seed: string;
}
export interface MilestoneEvent {
  type: "milestone";
  seq: number;
  kind: "likes" | "online";
  value: number;
  reward: string | null;
}
export interface LiveEvent {
  type: "live";
  seq: number;
  status: "live" | "ended";
  session: string;
  started_at: number;
  ended_at: number | null;
}

export type RoomEvent =
  | CommentEvent | CommentDeletedEvent | LikesEvent | OnlineEvent | PinEvent | NoticeEvent
  | SaleEvent | StockEvent | SoldOutEvent | DrawStartedEvent | DrawResultEvent
  | MilestoneEvent | LiveEvent;

export declare const EVENT_TYPES: ReadonlyArray<RoomEvent["type"]>;

// -- lifecycle --------------------------------------------------------------------------

export interface CloseInfo {
  code?: number;
  reason?: string;
  /** the HTTP status of a refused handshake, where the platform tells it (Node) */
  status?: number;
  /** the hub's error body of a refused handshake (Node) */
  error?: ProtocolError;
  /** the bye that came before the close, if any */
  bye?: ByeFrame | null;
  /** false: closed for good (close(), bye with reconnect: false, a refusal retrying cannot fix) */
  reconnecting: boolean;
}

export interface LiveRoomEvents {
  comment: (ev: CommentEvent, batch: BatchFrame) => void;
  comment_deleted: (ev: CommentDeletedEvent, batch: BatchFrame) => void;
  likes: (ev: LikesEvent, batch: BatchFrame) => void;
  online: (ev: OnlineEvent, batch: BatchFrame) => void;
  pin: (ev: PinEvent, batch: BatchFrame) => void;
  notice: (ev: NoticeEvent, batch: BatchFrame) => void;
  sale: (ev: SaleEvent, batch: BatchFrame) => void;
  stock: (ev: StockEvent, batch: BatchFrame) => void;
  sold_out: (ev: SoldOutEvent, batch: BatchFrame) => void;
  draw_started: (ev: DrawStartedEvent, batch: BatchFrame) => void;
  draw_result: (ev: DrawResultEvent, batch: BatchFrame) => void;
  milestone: (ev: MilestoneEvent, batch: BatchFrame) => void;
  live: (ev: LiveEvent, batch: BatchFrame) => void;
  /** after the batch's events were emitted one by one */
  batch: (batch: BatchFrame) => void;
  /** the socket opened (the welcome follows) */
  open: () => void;
  /** every welcome: the first, each reconnect's, and a reset's (room data lost) */
  welcome: (welcome: WelcomeFrame) => void;
  /** a reconnect succeeded; when `recovered` is false, redraw from `welcome.state` */
  reconnect: (info: { recovered: boolean; welcome: WelcomeFrame }) => void;
  /** a reconnect attempt is scheduled in `delayMs` */
  reconnecting: (info: { attempt: number; delayMs: number }) => void;
  close: (info: CloseInfo) => void;
  bye: (bye: ByeFrame) => void;
  pong: (pong: PongFrame) => void;
  /** an `error` frame (a frame without id was refused), or an undecodable frame */
  error: (err: LiveRoomError) => void;
}

// -- codecs and sockets -----------------------------------------------------------------

export type FrameData = ArrayBuffer | Uint8Array | string;

export interface Codec {
  /** "msgpack" (binary frames) or "json" (text frames, `codec=json` on the URL) */
  name: string;
  encode(frame: object): Uint8Array | string;
  decode(data: FrameData): any;
}

export declare const msgpackCodec: Codec;
export declare const jsonCodec: Codec;

export interface SocketHandlers {
  onOpen(): void;
  onMessage(data: FrameData): void;
  /** once per socket, also when it never opened */
  onClose(info: { code?: number; reason?: string; status?: number; error?: ProtocolError }): void;
}

export interface ClientSocket {
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
}

/** One call per connection attempt. */
export type SocketFactory = (url: string, handlers: SocketHandlers) => ClientSocket;

/** The browser's WebSocket (binaryType arraybuffer); the default where WebSocket exists. */
export declare function browserSocket(WebSocketImpl?: unknown): SocketFactory;
/** Node: pass the `ws` package's constructor (`import WebSocket from "ws"`). */
export declare function nodeSocket(WebSocketImpl: unknown, options?: object): SocketFactory;
/** Mini-programs: `wx` (or an API object of the same shape); options go to connectSocket. */
export declare function wxSocket(wxApi?: unknown, options?: object): SocketFactory;
/** The exact bytes of a view as a fresh ArrayBuffer. */
export declare function toArrayBuffer(u8: Uint8Array | ArrayBuffer): ArrayBuffer;

// -- the client -------------------------------------------------------------------------

export type TokenSource = string | null | undefined | (() => string | Promise<string>);

export interface LiveRoomOptions {
  /** the hub's WebSocket endpoint, e.g. "wss://live.example.com/ws" */
  url: string;
  room: string;
  /** a JWT, or a function called before each connection attempt (fresh tokens after `expired`) */
  token?: TokenSource;
  /** default: msgpack */
  codec?: Codec;
  /** default: browserSocket() */
  socket?: SocketFactory;
  /** call() rejects with `timeout` after this (10000) */
  callTimeoutMs?: number;
  /** taps are gathered into one `like` per this (200) */
  likeIntervalMs?: number;
  /** an app-level `ping` this often (20000); 0 turns it off */
  pingIntervalMs?: number;
  /** nothing received this long after a ping: the socket is dropped and reconnected (10000) */
  pongTimeoutMs?: number;
  /** reconnect by itself (true) */
  reconnect?: boolean;
  /** backoff: first delay (500), doubled per attempt up to backoffMaxMs (30000), with jitter */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

export interface CallOptions {
  timeoutMs?: number;
}

export type Reply<T = {}> = ReplyFrame & T;

export declare class LiveRoomError extends Error {
  /** a PROTOCOL.md error code, or the client's own: `timeout`, `disconnected`, `closed`, `bad_socket` (the adapter could not start) */
  code: string;
  frame?: ReplyFrame | ErrorFrame;
  constructor(code: string, message?: string, frame?: ReplyFrame | ErrorFrame);
}

export declare function newKey(): string;
/** The wait before reconnect attempt `attempt`: exponential, capped, jittered; at least hintMs. */
export declare function backoffDelay(attempt: number, minMs: number, maxMs: number, hintMs?: number, random?: () => number): number;

export interface SaleCreate {
  sku: string;
  title: string;
  price: number;
  stock: number;
  limit: number;
  starts_at?: number;
  ends_at?: number;
}

export interface DrawStart {
  prize: string;
  winners: number;
  mode?: "join" | "keyword" | "online";
  keyword?: string;
  duration_s?: number;
  exclude_winners?: boolean;
}

export interface MilestoneSet {
  kind: "likes" | "online";
  every?: number;
  value?: number;
  reward?: string | null;
  draw?: DrawStart | null;
}

export declare class LiveRoom {
  constructor(options: LiveRoomOptions);
  /** the codec used when none is given (msgpack when imported from the package's index) */
  static defaultCodec: Codec | null;

  readonly url: string;
  readonly room: string;
  readonly codec: Codec;
  readonly state: "idle" | "connecting" | "open" | "closed";
  readonly connected: boolean;
  /** the room's epoch and the last durable seq seen: what a reconnect resumes from */
  readonly epoch: string | null;
  readonly seq: number | null;
  readonly welcome: WelcomeFrame | null;
  readonly user: Me | null;
  readonly attempt: number;

  /** resolves with the first welcome; rejects (LiveRoomError) when refused for good or closed */
  connect(): Promise<WelcomeFrame>;
  /** closes for good; resolves once the socket has closed */
  close(): Promise<void>;
  setToken(token: TokenSource): void;

  on<K extends keyof LiveRoomEvents>(type: K, fn: LiveRoomEvents[K]): () => void;
  on(type: string, fn: (...args: any[]) => void): () => void;
  off<K extends keyof LiveRoomEvents>(type: K, fn: LiveRoomEvents[K]): void;
  off(type: string, fn: (...args: any[]) => void): void;
  once<K extends keyof LiveRoomEvents>(type: K, fn: LiveRoomEvents[K]): () => void;
  once(type: string, fn: (...args: any[]) => void): () => void;

  /** any op with an id: settles with its reply, rejects with the error's code */
  call<T = {}>(op: string, fields?: object, options?: CallOptions): Promise<Reply<T>>;
  /** any op without an id: no reply; false when not connected */
  send(op: string, fields?: object): boolean;

  // viewers
  comment(text: string): Promise<Reply<{ seq: number }>>;
  /** a tap (or n): gathered into one `like` op per 200 ms */
  like(n?: number): void;
  buy(sale: string, options?: { qty?: number; key?: string; timeoutMs?: number }): Promise<Reply<{ order: string; remaining: number; key: string }>>;
  joinDraw(draw: string): Promise<Reply>;
  report(seq: number, reason?: string): Promise<Reply>;
  ping(options?: CallOptions): Promise<PongFrame>;

  // hosts
  pin(product: Product | null): Promise<Reply<{ seq: number }>>;
  notice(text: string): Promise<Reply<{ seq: number }>>;
  saleCreate(sale: SaleCreate): Promise<Reply<{ sale: string; seq: number }>>;
  saleClose(sale: string): Promise<Reply>;
  drawStart(draw: DrawStart): Promise<Reply<{ draw: string; seq: number }>>;
  milestoneSet(milestone: MilestoneSet): Promise<Reply<{ milestone: string }>>;
  milestoneRemove(milestone: string): Promise<Reply>;
  /** seconds: 0 unmutes, -1 forever; or {escalate: true} for the next step of the ladder */
  mute(user: string, seconds: number | { escalate: true }): Promise<Reply<{ until: number; step?: number }>>;
  deleteComment(seq: number): Promise<Reply<{ seq: number }>>;
  kick(user: string): Promise<Reply>;
  /** seconds: 0 lifts, -1 forever (the default) */
  ban(user: string, seconds?: number): Promise<Reply>;
  liveStart(): Promise<Reply<{ session: string; started_at: number; started: boolean; seq?: number }>>;
  liveEnd(session?: string): Promise<Reply<{ session: string; ended_at: number; ended: boolean; seq?: number }>>;
}
