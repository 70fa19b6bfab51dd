// liveroom-client: the client with msgpack as its default codec.
// Pages without a bundler import this file and map "@msgpack/msgpack" (imported by
// codec.js only) with an import map; client.js alone has no outside import at all.
import { LiveRoom } from "./client.js";
import { msgpackCodec } from "./codec.js";

LiveRoom.defaultCodec = msgpackCodec;

export { LiveRoom, LiveRoomError, EVENT_TYPES, backoffDelay, newKey } from "./client.js";
export { browserSocket, nodeSocket, wxSocket, toArrayBuffer } from "./adapters.js";
export { msgpackCodec } from "./codec.js";
export { jsonCodec } from "./json.js";
