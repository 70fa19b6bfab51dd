// Socket adapters: one small factory per platform, so that the client itself never touches
// a platform API. A factory is called once per connection attempt:
//
//   socket(url, {onOpen(), onMessage(data), onClose({code, reason, status?, error?})})
//     -> {send(data), close(code, reason)}
//
// `data` received is an ArrayBuffer, a Uint8Array or a string (text frame); `data` sent is
// what the codec produced (a Uint8Array, possibly a view over a larger buffer, or a string).
// onClose is called once per socket, also when the connection never opened.

/** The exact bytes of a view as a fresh ArrayBuffer (never the whole underlying buffer). */
export function toArrayBuffer(u8) {
  if (u8 instanceof ArrayBuffer) return u8;
  return u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength);
}

function onceClose(handlers) {
  let closed = false;
  return (info) => {
    if (closed) return;
    closed = true;
    handlers.onClose(info);
  };
}

/** The browser's WebSocket (or any WHATWG one: Deno, Node >= 22, a test double). */
export function browserSocket(WebSocketImpl = typeof WebSocket !== "undefined" ? WebSocket : undefined) {
  if (typeof WebSocketImpl !== "function") {
    throw new TypeError("browserSocket: no WebSocket here; pass socket: nodeSocket(WebSocket) or wxSocket(wx)");
  }
  return (url, handlers) => {
    const ws = new WebSocketImpl(url);
    ws.binaryType = "arraybuffer";
    const close = onceClose(handlers);
    ws.onopen = () => handlers.onOpen();
    ws.onmessage = (e) => handlers.onMessage(e.data);
    // a refused handshake shows as an error then close 1006: browsers hide the HTTP status
    ws.onerror = () => {};
    ws.onclose = (e) => close({ code: e.code, reason: e.reason });
    return {
      send: (data) => ws.send(data), // a view sends only its own bytes here
      close: (code = 1000, reason = "") => ws.close(code, reason),
    };
  };
}

/**
 * Node's `ws` package. Its constructor is passed in (`import WebSocket from "ws"`), so the
 * client has no runtime dependency on it. A refused handshake reports the HTTP `status` and
 * the hub's `{error: {code, message}}` body as `error`.
 */
export function nodeSocket(WebSocketImpl, options = {}) {
  if (typeof WebSocketImpl !== "function") {
    throw new TypeError("nodeSocket: pass the ws constructor, e.g. nodeSocket(WebSocket) after `import WebSocket from \"ws\"`");
  }
  return (url, handlers) => {
    const ws = new WebSocketImpl(url, options);
    const close = onceClose(handlers);
    ws.on("open", () => handlers.onOpen());
    ws.on("message", (data, isBinary) => {
      if (!isBinary) return handlers.onMessage(data.toString("utf8"));
      const buf = Array.isArray(data) ? Buffer.concat(data) : data;
      handlers.onMessage(buf instanceof ArrayBuffer ? buf : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    });
    ws.on("unexpected-response", (req, res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        let error;
        try {
          error = JSON.parse(Buffer.concat(chunks).toString("utf8")).error;
        } catch (e) {
          error = undefined;
        }
        close({ code: 1006, reason: "", status: res.statusCode, error });
        req.destroy();
      });
    });
    ws.on("error", () => {}); // a close follows (or unexpected-response)
    ws.on("close", (code, reason) => close({ code, reason: reason.toString("utf8") }));
    return {
      send: (data) => ws.send(data),
      close: (code = 1000, reason = "") => {
        if (ws.readyState === ws.CONNECTING) ws.terminate();
        else ws.close(code, reason);
      },
    };
  };
}

/**
 * A WeChat mini-program SocketTask (`wx.connectSocket`; also `tt`, `my`, `uni` style APIs
 * with the same shape). Frames there are strings or ArrayBuffers: a Uint8Array is sent as a
 * slice of exactly its bytes, never as a view. `options` go to connectSocket (header,
 * protocols, timeout...).
 */
export function wxSocket(wxApi = typeof wx !== "undefined" ? wx : undefined, options = {}) {
  if (!wxApi || typeof wxApi.connectSocket !== "function") {
    throw new TypeError("wxSocket: pass the mini-program API object (wx)");
  }
  return (url, handlers) => {
    const task = wxApi.connectSocket({ ...options, url });
    const close = onceClose(handlers);
    task.onOpen(() => handlers.onOpen());
    task.onMessage((msg) => handlers.onMessage(msg.data));
    task.onClose((res) => close({ code: res && res.code, reason: (res && res.reason) || "" }));
    task.onError((err) => {
      close({ code: 1006, reason: (err && err.errMsg) || "socket error" });
      try {
        task.close({ code: 1000 });
      } catch (e) {
        // already closed
      }
    });
    return {
      send: (data) => task.send({ data: typeof data === "string" ? data : toArrayBuffer(data) }),
      close: (code = 1000, reason = "") => task.close({ code, reason }),
    };
  };
}
