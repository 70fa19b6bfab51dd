// The one file that imports the msgpack library. A page without a bundler maps the bare
// specifier with an import map, e.g.
//   <script type="importmap">{"imports": {"@msgpack/msgpack": "/static/msgpack.mjs"}}</script>
// @msgpack/msgpack is pinned to 2.8.x: 3.x needs TextEncoder at import time, which the
// WeChat mini-program runtime lacks (2.8 falls back to pure JS).
import { encode, decode } from "@msgpack/msgpack";

/** One msgpack map per binary frame: the hub's default codec. */
export const msgpackCodec = {
  name: "msgpack",
  /** @returns {Uint8Array} possibly a view over a larger buffer: adapters that need an
   * ArrayBuffer (wx) slice it */
  encode: (obj) => encode(obj),
  decode: (data) => decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data),
};
