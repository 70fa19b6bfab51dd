// One JSON object per text frame (`codec=json`): no library, readable in devtools.

/** The hub's JSON codec; frames are strings, so no TextEncoder/TextDecoder is needed. */
export const jsonCodec = {
  name: "json",
  encode: (obj) => JSON.stringify(obj),
  decode: (data) => {
    if (typeof data !== "string") {
      throw new TypeError("json codec: expected a text frame");
    }
    return JSON.parse(data);
  },
};
