// chathub-client, bundled for the browser from clients/typescript (npm run bundle). Do not edit.
var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// src/protocol.ts
function applyEvent(view, event) {
  if (view.some((e) => e.seq === event.seq)) return view;
  if (event.event === "edited" || event.event === "unsent" || event.event === "redacted") {
    const removes = event.event !== "edited";
    for (const e of view) {
      if (e.seq === event.target && e.event === "message") {
        const a = e.amended;
        if (a && (a.seq >= event.seq || a.change !== "edited")) continue;
        if (event.event === "edited" && event.text === void 0) continue;
        e.content = event.event === "edited" ? { kind: "text", text: event.text } : { kind: "removed" };
        e.amended = {
          change: event.event,
          seq: event.seq,
          at: event.at,
          by: event.event === "redacted" ? event.by : event.author,
          ...event.event === "redacted" ? { reason: event.reason } : {}
        };
      } else if (removes && e.event === "edited" && e.target === event.target) {
        delete e.text;
      }
    }
  }
  view.push(event);
  return view;
}
var OPS = [
  "send",
  "subscribe",
  "unsubscribe",
  "open",
  "history",
  "list",
  "finish",
  "transfer",
  "release",
  "handoff",
  "edit",
  "unsend",
  "redact",
  "survey_answer",
  "typing",
  "read",
  "disable",
  "enable",
  "inbox",
  "engagement_history",
  "engagement_activity",
  "engagements_available",
  "profile",
  "redeem",
  "canned_list",
  "canned_upsert",
  "canned_delete",
  "disable_tenant",
  "enable_tenant",
  "presence",
  "agents",
  "search",
  "transcript",
  "stats",
  "attachment_upload",
  "attachment_link",
  "ping"
];
var CLOSE_CODES = [
  { code: 1e3, name: "normal", reconnect: false },
  { code: 1001, name: "going_away", reconnect: true },
  { code: 1002, name: "protocol_error", reconnect: false },
  { code: 1007, name: "invalid_data", reconnect: false },
  { code: 1008, name: "token_expired", reconnect: false },
  { code: 1008, name: "token_revoked", reconnect: false },
  { code: 1009, name: "too_big", reconnect: false },
  { code: 1011, name: "internal_error", reconnect: true },
  { code: 4e3, name: "keepalive_timeout", reconnect: true },
  { code: 4001, name: "slow_consumer", reconnect: true },
  { code: 4101, name: "policy_violation", reconnect: false },
  { code: 4102, name: "erased", reconnect: false }
];
var FATAL_CLOSE_CODES = new Set(
  CLOSE_CODES.filter((c) => !c.reconnect).map((c) => c.code)
);

// src/errors.ts
var ChathubError = class _ChathubError extends Error {
  constructor(code, message, frame) {
    super(message || code);
    /** What went wrong (match on it). */
    __publicField(this, "code");
    /** The server's `err` frame, when the server answered. */
    __publicField(this, "frame");
    this.name = "ChathubError";
    this.code = code;
    this.frame = frame;
  }
  /** The error of a server's `err` frame. */
  static fromFrame(frame) {
    return new _ChathubError(frame.code, frame.message, frame);
  }
  /**
   * Whether trying again (with the same `client_msg_id` for a send) may succeed: the
   * connection broke, the reply was late, or the server was briefly unavailable.
   */
  get retryable() {
    return this.code === "disconnected" || this.code === "timeout" || this.code === "unavailable" || this.code === "rate_limited" || this.code === "network";
  }
};

// node_modules/@msgpack/msgpack/dist.esm/utils/utf8.mjs
function utf8Count(str) {
  const strLength = str.length;
  let byteLength = 0;
  let pos = 0;
  while (pos < strLength) {
    let value = str.charCodeAt(pos++);
    if ((value & 4294967168) === 0) {
      byteLength++;
      continue;
    } else if ((value & 4294965248) === 0) {
      byteLength += 2;
    } else {
      if (value >= 55296 && value <= 56319) {
        if (pos < strLength) {
          const extra = str.charCodeAt(pos);
          if ((extra & 64512) === 56320) {
            ++pos;
            value = ((value & 1023) << 10) + (extra & 1023) + 65536;
          }
        }
      }
      if ((value & 4294901760) === 0) {
        byteLength += 3;
      } else {
        byteLength += 4;
      }
    }
  }
  return byteLength;
}
function utf8EncodeJs(str, output, outputOffset) {
  const strLength = str.length;
  let offset = outputOffset;
  let pos = 0;
  while (pos < strLength) {
    let value = str.charCodeAt(pos++);
    if ((value & 4294967168) === 0) {
      output[offset++] = value;
      continue;
    } else if ((value & 4294965248) === 0) {
      output[offset++] = value >> 6 & 31 | 192;
    } else {
      if (value >= 55296 && value <= 56319) {
        if (pos < strLength) {
          const extra = str.charCodeAt(pos);
          if ((extra & 64512) === 56320) {
            ++pos;
            value = ((value & 1023) << 10) + (extra & 1023) + 65536;
          }
        }
      }
      if ((value & 4294901760) === 0) {
        output[offset++] = value >> 12 & 15 | 224;
        output[offset++] = value >> 6 & 63 | 128;
      } else {
        output[offset++] = value >> 18 & 7 | 240;
        output[offset++] = value >> 12 & 63 | 128;
        output[offset++] = value >> 6 & 63 | 128;
      }
    }
    output[offset++] = value & 63 | 128;
  }
}
var sharedTextEncoder = new TextEncoder();
var TEXT_ENCODER_THRESHOLD = 50;
function utf8EncodeTE(str, output, outputOffset) {
  sharedTextEncoder.encodeInto(str, output.subarray(outputOffset));
}
function utf8Encode(str, output, outputOffset) {
  if (str.length > TEXT_ENCODER_THRESHOLD) {
    utf8EncodeTE(str, output, outputOffset);
  } else {
    utf8EncodeJs(str, output, outputOffset);
  }
}
var CHUNK_SIZE = 4096;
function utf8DecodeJs(bytes, inputOffset, byteLength) {
  let offset = inputOffset;
  const end = offset + byteLength;
  const units = [];
  let result = "";
  while (offset < end) {
    const byte1 = bytes[offset++];
    if ((byte1 & 128) === 0) {
      units.push(byte1);
    } else if ((byte1 & 224) === 192) {
      const byte2 = bytes[offset++] & 63;
      units.push((byte1 & 31) << 6 | byte2);
    } else if ((byte1 & 240) === 224) {
      const byte2 = bytes[offset++] & 63;
      const byte3 = bytes[offset++] & 63;
      units.push((byte1 & 31) << 12 | byte2 << 6 | byte3);
    } else if ((byte1 & 248) === 240) {
      const byte2 = bytes[offset++] & 63;
      const byte3 = bytes[offset++] & 63;
      const byte4 = bytes[offset++] & 63;
      let unit = (byte1 & 7) << 18 | byte2 << 12 | byte3 << 6 | byte4;
      if (unit > 65535) {
        unit -= 65536;
        units.push(unit >>> 10 & 1023 | 55296);
        unit = 56320 | unit & 1023;
      }
      units.push(unit);
    } else {
      units.push(byte1);
    }
    if (units.length >= CHUNK_SIZE) {
      result += String.fromCharCode(...units);
      units.length = 0;
    }
  }
  if (units.length > 0) {
    result += String.fromCharCode(...units);
  }
  return result;
}
var sharedTextDecoder = new TextDecoder();
var TEXT_DECODER_THRESHOLD = 200;
function utf8DecodeTD(bytes, inputOffset, byteLength) {
  const stringBytes = bytes.subarray(inputOffset, inputOffset + byteLength);
  return sharedTextDecoder.decode(stringBytes);
}
function utf8Decode(bytes, inputOffset, byteLength) {
  if (byteLength > TEXT_DECODER_THRESHOLD) {
    return utf8DecodeTD(bytes, inputOffset, byteLength);
  } else {
    return utf8DecodeJs(bytes, inputOffset, byteLength);
  }
}

// node_modules/@msgpack/msgpack/dist.esm/ExtData.mjs
var ExtData = class {
  constructor(type, data) {
    __publicField(this, "type");
    __publicField(this, "data");
    this.type = type;
    this.data = data;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/DecodeError.mjs
var DecodeError = class _DecodeError extends Error {
  constructor(message) {
    super(message);
    const proto = Object.create(_DecodeError.prototype);
    Object.setPrototypeOf(this, proto);
    Object.defineProperty(this, "name", {
      configurable: true,
      enumerable: false,
      value: _DecodeError.name
    });
  }
};

// node_modules/@msgpack/msgpack/dist.esm/utils/int.mjs
var UINT32_MAX = 4294967295;
function setUint64(view, offset, value) {
  const high = value / 4294967296;
  const low = value;
  view.setUint32(offset, high);
  view.setUint32(offset + 4, low);
}
function setInt64(view, offset, value) {
  const high = Math.floor(value / 4294967296);
  const low = value;
  view.setUint32(offset, high);
  view.setUint32(offset + 4, low);
}
function getInt64(view, offset) {
  const high = view.getInt32(offset);
  const low = view.getUint32(offset + 4);
  return high * 4294967296 + low;
}
function getUint64(view, offset) {
  const high = view.getUint32(offset);
  const low = view.getUint32(offset + 4);
  return high * 4294967296 + low;
}

// node_modules/@msgpack/msgpack/dist.esm/timestamp.mjs
var EXT_TIMESTAMP = -1;
var TIMESTAMP32_MAX_SEC = 4294967296 - 1;
var TIMESTAMP64_MAX_SEC = 17179869184 - 1;
function encodeTimeSpecToTimestamp({ sec, nsec }) {
  if (sec >= 0 && nsec >= 0 && sec <= TIMESTAMP64_MAX_SEC) {
    if (nsec === 0 && sec <= TIMESTAMP32_MAX_SEC) {
      const rv = new Uint8Array(4);
      const view = new DataView(rv.buffer);
      view.setUint32(0, sec);
      return rv;
    } else {
      const secHigh = sec / 4294967296;
      const secLow = sec & 4294967295;
      const rv = new Uint8Array(8);
      const view = new DataView(rv.buffer);
      view.setUint32(0, nsec << 2 | secHigh & 3);
      view.setUint32(4, secLow);
      return rv;
    }
  } else {
    const rv = new Uint8Array(12);
    const view = new DataView(rv.buffer);
    view.setUint32(0, nsec);
    setInt64(view, 4, sec);
    return rv;
  }
}
function encodeDateToTimeSpec(date) {
  const msec = date.getTime();
  const sec = Math.floor(msec / 1e3);
  const nsec = (msec - sec * 1e3) * 1e6;
  const nsecInSec = Math.floor(nsec / 1e9);
  return {
    sec: sec + nsecInSec,
    nsec: nsec - nsecInSec * 1e9
  };
}
function encodeTimestampExtension(object) {
  if (object instanceof Date) {
    const timeSpec = encodeDateToTimeSpec(object);
    return encodeTimeSpecToTimestamp(timeSpec);
  } else {
    return null;
  }
}
function decodeTimestampToTimeSpec(data) {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (data.byteLength) {
    case 4: {
      const sec = view.getUint32(0);
      const nsec = 0;
      return { sec, nsec };
    }
    case 8: {
      const nsec30AndSecHigh2 = view.getUint32(0);
      const secLow32 = view.getUint32(4);
      const sec = (nsec30AndSecHigh2 & 3) * 4294967296 + secLow32;
      const nsec = nsec30AndSecHigh2 >>> 2;
      return { sec, nsec };
    }
    case 12: {
      const sec = getInt64(view, 4);
      const nsec = view.getUint32(0);
      return { sec, nsec };
    }
    default:
      throw new DecodeError(`Unrecognized data size for timestamp (expected 4, 8, or 12): ${data.length}`);
  }
}
function decodeTimestampExtension(data) {
  const timeSpec = decodeTimestampToTimeSpec(data);
  return new Date(timeSpec.sec * 1e3 + timeSpec.nsec / 1e6);
}
var timestampExtension = {
  type: EXT_TIMESTAMP,
  encode: encodeTimestampExtension,
  decode: decodeTimestampExtension
};

// node_modules/@msgpack/msgpack/dist.esm/ExtensionCodec.mjs
var _ExtensionCodec = class _ExtensionCodec {
  constructor() {
    // ensures ExtensionCodecType<X> matches ExtensionCodec<X>
    // this will make type errors a lot more clear
    // eslint-disable-next-line @typescript-eslint/naming-convention
    __publicField(this, "__brand");
    // built-in extensions
    __publicField(this, "builtInEncoders", []);
    __publicField(this, "builtInDecoders", []);
    // custom extensions
    __publicField(this, "encoders", []);
    __publicField(this, "decoders", []);
    this.register(timestampExtension);
  }
  register({ type, encode: encode2, decode: decode2 }) {
    if (type >= 0) {
      this.encoders[type] = encode2;
      this.decoders[type] = decode2;
    } else {
      const index = -1 - type;
      this.builtInEncoders[index] = encode2;
      this.builtInDecoders[index] = decode2;
    }
  }
  tryToEncode(object, context) {
    for (let i = 0; i < this.builtInEncoders.length; i++) {
      const encodeExt = this.builtInEncoders[i];
      if (encodeExt != null) {
        const data = encodeExt(object, context);
        if (data != null) {
          const type = -1 - i;
          return new ExtData(type, data);
        }
      }
    }
    for (let i = 0; i < this.encoders.length; i++) {
      const encodeExt = this.encoders[i];
      if (encodeExt != null) {
        const data = encodeExt(object, context);
        if (data != null) {
          const type = i;
          return new ExtData(type, data);
        }
      }
    }
    if (object instanceof ExtData) {
      return object;
    }
    return null;
  }
  decode(data, type, context) {
    const decodeExt = type < 0 ? this.builtInDecoders[-1 - type] : this.decoders[type];
    if (decodeExt) {
      return decodeExt(data, type, context);
    } else {
      return new ExtData(type, data);
    }
  }
};
__publicField(_ExtensionCodec, "defaultCodec", new _ExtensionCodec());
var ExtensionCodec = _ExtensionCodec;

// node_modules/@msgpack/msgpack/dist.esm/utils/typedArrays.mjs
function isArrayBufferLike(buffer) {
  return buffer instanceof ArrayBuffer || typeof SharedArrayBuffer !== "undefined" && buffer instanceof SharedArrayBuffer;
}
function ensureUint8Array(buffer) {
  if (buffer instanceof Uint8Array) {
    return buffer;
  } else if (ArrayBuffer.isView(buffer)) {
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } else if (isArrayBufferLike(buffer)) {
    return new Uint8Array(buffer);
  } else {
    return Uint8Array.from(buffer);
  }
}

// node_modules/@msgpack/msgpack/dist.esm/Encoder.mjs
var DEFAULT_MAX_DEPTH = 100;
var DEFAULT_INITIAL_BUFFER_SIZE = 2048;
var Encoder = class _Encoder {
  constructor(options) {
    __publicField(this, "extensionCodec");
    __publicField(this, "context");
    __publicField(this, "useBigInt64");
    __publicField(this, "maxDepth");
    __publicField(this, "initialBufferSize");
    __publicField(this, "sortKeys");
    __publicField(this, "forceFloat32");
    __publicField(this, "ignoreUndefined");
    __publicField(this, "forceIntegerToFloat");
    __publicField(this, "pos");
    __publicField(this, "view");
    __publicField(this, "bytes");
    __publicField(this, "entered", false);
    this.extensionCodec = options?.extensionCodec ?? ExtensionCodec.defaultCodec;
    this.context = options?.context;
    this.useBigInt64 = options?.useBigInt64 ?? false;
    this.maxDepth = options?.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.initialBufferSize = options?.initialBufferSize ?? DEFAULT_INITIAL_BUFFER_SIZE;
    this.sortKeys = options?.sortKeys ?? false;
    this.forceFloat32 = options?.forceFloat32 ?? false;
    this.ignoreUndefined = options?.ignoreUndefined ?? false;
    this.forceIntegerToFloat = options?.forceIntegerToFloat ?? false;
    this.pos = 0;
    this.view = new DataView(new ArrayBuffer(this.initialBufferSize));
    this.bytes = new Uint8Array(this.view.buffer);
  }
  clone() {
    return new _Encoder({
      extensionCodec: this.extensionCodec,
      context: this.context,
      useBigInt64: this.useBigInt64,
      maxDepth: this.maxDepth,
      initialBufferSize: this.initialBufferSize,
      sortKeys: this.sortKeys,
      forceFloat32: this.forceFloat32,
      ignoreUndefined: this.ignoreUndefined,
      forceIntegerToFloat: this.forceIntegerToFloat
    });
  }
  reinitializeState() {
    this.pos = 0;
  }
  /**
   * This is almost equivalent to {@link Encoder#encode}, but it returns an reference of the encoder's internal buffer and thus much faster than {@link Encoder#encode}.
   *
   * @returns Encodes the object and returns a shared reference the encoder's internal buffer.
   */
  encodeSharedRef(object) {
    if (this.entered) {
      const instance = this.clone();
      return instance.encodeSharedRef(object);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.doEncode(object, 1);
      return this.bytes.subarray(0, this.pos);
    } finally {
      this.entered = false;
    }
  }
  /**
   * @returns Encodes the object and returns a copy of the encoder's internal buffer.
   */
  encode(object) {
    if (this.entered) {
      const instance = this.clone();
      return instance.encode(object);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.doEncode(object, 1);
      return this.bytes.slice(0, this.pos);
    } finally {
      this.entered = false;
    }
  }
  doEncode(object, depth) {
    if (depth > this.maxDepth) {
      throw new Error(`Too deep objects in depth ${depth}`);
    }
    if (object == null) {
      this.encodeNil();
    } else if (typeof object === "boolean") {
      this.encodeBoolean(object);
    } else if (typeof object === "number") {
      if (!this.forceIntegerToFloat) {
        this.encodeNumber(object);
      } else {
        this.encodeNumberAsFloat(object);
      }
    } else if (typeof object === "string") {
      this.encodeString(object);
    } else if (this.useBigInt64 && typeof object === "bigint") {
      this.encodeBigInt64(object);
    } else {
      this.encodeObject(object, depth);
    }
  }
  ensureBufferSizeToWrite(sizeToWrite) {
    const requiredSize = this.pos + sizeToWrite;
    if (this.view.byteLength < requiredSize) {
      this.resizeBuffer(requiredSize * 2);
    }
  }
  resizeBuffer(newSize) {
    const newBuffer = new ArrayBuffer(newSize);
    const newBytes = new Uint8Array(newBuffer);
    const newView = new DataView(newBuffer);
    newBytes.set(this.bytes);
    this.view = newView;
    this.bytes = newBytes;
  }
  encodeNil() {
    this.writeU8(192);
  }
  encodeBoolean(object) {
    if (object === false) {
      this.writeU8(194);
    } else {
      this.writeU8(195);
    }
  }
  encodeNumber(object) {
    if (!this.forceIntegerToFloat && Number.isSafeInteger(object)) {
      if (object >= 0) {
        if (object < 128) {
          this.writeU8(object);
        } else if (object < 256) {
          this.writeU8(204);
          this.writeU8(object);
        } else if (object < 65536) {
          this.writeU8(205);
          this.writeU16(object);
        } else if (object < 4294967296) {
          this.writeU8(206);
          this.writeU32(object);
        } else if (!this.useBigInt64) {
          this.writeU8(207);
          this.writeU64(object);
        } else {
          this.encodeNumberAsFloat(object);
        }
      } else {
        if (object >= -32) {
          this.writeU8(224 | object + 32);
        } else if (object >= -128) {
          this.writeU8(208);
          this.writeI8(object);
        } else if (object >= -32768) {
          this.writeU8(209);
          this.writeI16(object);
        } else if (object >= -2147483648) {
          this.writeU8(210);
          this.writeI32(object);
        } else if (!this.useBigInt64) {
          this.writeU8(211);
          this.writeI64(object);
        } else {
          this.encodeNumberAsFloat(object);
        }
      }
    } else {
      this.encodeNumberAsFloat(object);
    }
  }
  encodeNumberAsFloat(object) {
    if (this.forceFloat32) {
      this.writeU8(202);
      this.writeF32(object);
    } else {
      this.writeU8(203);
      this.writeF64(object);
    }
  }
  encodeBigInt64(object) {
    if (object >= BigInt(0)) {
      this.writeU8(207);
      this.writeBigUint64(object);
    } else {
      this.writeU8(211);
      this.writeBigInt64(object);
    }
  }
  writeStringHeader(byteLength) {
    if (byteLength < 32) {
      this.writeU8(160 + byteLength);
    } else if (byteLength < 256) {
      this.writeU8(217);
      this.writeU8(byteLength);
    } else if (byteLength < 65536) {
      this.writeU8(218);
      this.writeU16(byteLength);
    } else if (byteLength < 4294967296) {
      this.writeU8(219);
      this.writeU32(byteLength);
    } else {
      throw new Error(`Too long string: ${byteLength} bytes in UTF-8`);
    }
  }
  encodeString(object) {
    const maxHeaderSize = 1 + 4;
    const byteLength = utf8Count(object);
    this.ensureBufferSizeToWrite(maxHeaderSize + byteLength);
    this.writeStringHeader(byteLength);
    utf8Encode(object, this.bytes, this.pos);
    this.pos += byteLength;
  }
  encodeObject(object, depth) {
    const ext = this.extensionCodec.tryToEncode(object, this.context);
    if (ext != null) {
      this.encodeExtension(ext);
    } else if (Array.isArray(object)) {
      this.encodeArray(object, depth);
    } else if (ArrayBuffer.isView(object)) {
      this.encodeBinary(object);
    } else if (typeof object === "object") {
      this.encodeMap(object, depth);
    } else {
      throw new Error(`Unrecognized object: ${Object.prototype.toString.apply(object)}`);
    }
  }
  encodeBinary(object) {
    const size = object.byteLength;
    if (size < 256) {
      this.writeU8(196);
      this.writeU8(size);
    } else if (size < 65536) {
      this.writeU8(197);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(198);
      this.writeU32(size);
    } else {
      throw new Error(`Too large binary: ${size}`);
    }
    const bytes = ensureUint8Array(object);
    this.writeU8a(bytes);
  }
  encodeArray(object, depth) {
    const size = object.length;
    if (size < 16) {
      this.writeU8(144 + size);
    } else if (size < 65536) {
      this.writeU8(220);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(221);
      this.writeU32(size);
    } else {
      throw new Error(`Too large array: ${size}`);
    }
    for (const item of object) {
      this.doEncode(item, depth + 1);
    }
  }
  countWithoutUndefined(object, keys) {
    let count = 0;
    for (const key of keys) {
      if (object[key] !== void 0) {
        count++;
      }
    }
    return count;
  }
  encodeMap(object, depth) {
    const keys = Object.keys(object);
    if (this.sortKeys) {
      keys.sort();
    }
    const size = this.ignoreUndefined ? this.countWithoutUndefined(object, keys) : keys.length;
    if (size < 16) {
      this.writeU8(128 + size);
    } else if (size < 65536) {
      this.writeU8(222);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(223);
      this.writeU32(size);
    } else {
      throw new Error(`Too large map object: ${size}`);
    }
    for (const key of keys) {
      const value = object[key];
      if (!(this.ignoreUndefined && value === void 0)) {
        this.encodeString(key);
        this.doEncode(value, depth + 1);
      }
    }
  }
  encodeExtension(ext) {
    if (typeof ext.data === "function") {
      const data = ext.data(this.pos + 6);
      const size2 = data.length;
      if (size2 >= 4294967296) {
        throw new Error(`Too large extension object: ${size2}`);
      }
      this.writeU8(201);
      this.writeU32(size2);
      this.writeI8(ext.type);
      this.writeU8a(data);
      return;
    }
    const size = ext.data.length;
    if (size === 1) {
      this.writeU8(212);
    } else if (size === 2) {
      this.writeU8(213);
    } else if (size === 4) {
      this.writeU8(214);
    } else if (size === 8) {
      this.writeU8(215);
    } else if (size === 16) {
      this.writeU8(216);
    } else if (size < 256) {
      this.writeU8(199);
      this.writeU8(size);
    } else if (size < 65536) {
      this.writeU8(200);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(201);
      this.writeU32(size);
    } else {
      throw new Error(`Too large extension object: ${size}`);
    }
    this.writeI8(ext.type);
    this.writeU8a(ext.data);
  }
  writeU8(value) {
    this.ensureBufferSizeToWrite(1);
    this.view.setUint8(this.pos, value);
    this.pos++;
  }
  writeU8a(values) {
    const size = values.length;
    this.ensureBufferSizeToWrite(size);
    this.bytes.set(values, this.pos);
    this.pos += size;
  }
  writeI8(value) {
    this.ensureBufferSizeToWrite(1);
    this.view.setInt8(this.pos, value);
    this.pos++;
  }
  writeU16(value) {
    this.ensureBufferSizeToWrite(2);
    this.view.setUint16(this.pos, value);
    this.pos += 2;
  }
  writeI16(value) {
    this.ensureBufferSizeToWrite(2);
    this.view.setInt16(this.pos, value);
    this.pos += 2;
  }
  writeU32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setUint32(this.pos, value);
    this.pos += 4;
  }
  writeI32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setInt32(this.pos, value);
    this.pos += 4;
  }
  writeF32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setFloat32(this.pos, value);
    this.pos += 4;
  }
  writeF64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setFloat64(this.pos, value);
    this.pos += 8;
  }
  writeU64(value) {
    this.ensureBufferSizeToWrite(8);
    setUint64(this.view, this.pos, value);
    this.pos += 8;
  }
  writeI64(value) {
    this.ensureBufferSizeToWrite(8);
    setInt64(this.view, this.pos, value);
    this.pos += 8;
  }
  writeBigUint64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setBigUint64(this.pos, value);
    this.pos += 8;
  }
  writeBigInt64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setBigInt64(this.pos, value);
    this.pos += 8;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/encode.mjs
function encode(value, options) {
  const encoder = new Encoder(options);
  return encoder.encodeSharedRef(value);
}

// node_modules/@msgpack/msgpack/dist.esm/utils/prettyByte.mjs
function prettyByte(byte) {
  return `${byte < 0 ? "-" : ""}0x${Math.abs(byte).toString(16).padStart(2, "0")}`;
}

// node_modules/@msgpack/msgpack/dist.esm/CachedKeyDecoder.mjs
var DEFAULT_MAX_KEY_LENGTH = 16;
var DEFAULT_MAX_LENGTH_PER_KEY = 16;
var CachedKeyDecoder = class {
  constructor(maxKeyLength = DEFAULT_MAX_KEY_LENGTH, maxLengthPerKey = DEFAULT_MAX_LENGTH_PER_KEY) {
    __publicField(this, "hit", 0);
    __publicField(this, "miss", 0);
    __publicField(this, "caches");
    __publicField(this, "maxKeyLength");
    __publicField(this, "maxLengthPerKey");
    this.maxKeyLength = maxKeyLength;
    this.maxLengthPerKey = maxLengthPerKey;
    this.caches = [];
    for (let i = 0; i < this.maxKeyLength; i++) {
      this.caches.push([]);
    }
  }
  canBeCached(byteLength) {
    return byteLength > 0 && byteLength <= this.maxKeyLength;
  }
  find(bytes, inputOffset, byteLength) {
    const records = this.caches[byteLength - 1];
    FIND_CHUNK: for (const record of records) {
      const recordBytes = record.bytes;
      for (let j = 0; j < byteLength; j++) {
        if (recordBytes[j] !== bytes[inputOffset + j]) {
          continue FIND_CHUNK;
        }
      }
      return record.str;
    }
    return null;
  }
  store(bytes, value) {
    const records = this.caches[bytes.length - 1];
    const record = { bytes, str: value };
    if (records.length >= this.maxLengthPerKey) {
      records[Math.random() * records.length | 0] = record;
    } else {
      records.push(record);
    }
  }
  decode(bytes, inputOffset, byteLength) {
    const cachedValue = this.find(bytes, inputOffset, byteLength);
    if (cachedValue != null) {
      this.hit++;
      return cachedValue;
    }
    this.miss++;
    const str = utf8DecodeJs(bytes, inputOffset, byteLength);
    const slicedCopyOfBytes = Uint8Array.prototype.slice.call(bytes, inputOffset, inputOffset + byteLength);
    this.store(slicedCopyOfBytes, str);
    return str;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/Decoder.mjs
var STATE_ARRAY = "array";
var STATE_MAP_KEY = "map_key";
var STATE_MAP_VALUE = "map_value";
var mapKeyConverter = (key) => {
  if (typeof key === "string" || typeof key === "number") {
    return key;
  }
  throw new DecodeError("The type of key must be string or number but " + typeof key);
};
var StackPool = class {
  constructor() {
    __publicField(this, "stack", []);
    __publicField(this, "stackHeadPosition", -1);
  }
  get length() {
    return this.stackHeadPosition + 1;
  }
  top() {
    return this.stack[this.stackHeadPosition];
  }
  pushArrayState(size) {
    const state = this.getUninitializedStateFromPool();
    state.type = STATE_ARRAY;
    state.position = 0;
    state.size = size;
    state.array = new Array(size);
  }
  pushMapState(size) {
    const state = this.getUninitializedStateFromPool();
    state.type = STATE_MAP_KEY;
    state.readCount = 0;
    state.size = size;
    state.map = {};
  }
  getUninitializedStateFromPool() {
    this.stackHeadPosition++;
    if (this.stackHeadPosition === this.stack.length) {
      const partialState = {
        type: void 0,
        size: 0,
        array: void 0,
        position: 0,
        readCount: 0,
        map: void 0,
        key: null
      };
      this.stack.push(partialState);
    }
    return this.stack[this.stackHeadPosition];
  }
  release(state) {
    const topStackState = this.stack[this.stackHeadPosition];
    if (topStackState !== state) {
      throw new Error("Invalid stack state. Released state is not on top of the stack.");
    }
    if (state.type === STATE_ARRAY) {
      const partialState = state;
      partialState.size = 0;
      partialState.array = void 0;
      partialState.position = 0;
      partialState.type = void 0;
    }
    if (state.type === STATE_MAP_KEY || state.type === STATE_MAP_VALUE) {
      const partialState = state;
      partialState.size = 0;
      partialState.map = void 0;
      partialState.readCount = 0;
      partialState.type = void 0;
    }
    this.stackHeadPosition--;
  }
  reset() {
    this.stack.length = 0;
    this.stackHeadPosition = -1;
  }
};
var HEAD_BYTE_REQUIRED = -1;
var EMPTY_VIEW = new DataView(new ArrayBuffer(0));
var EMPTY_BYTES = new Uint8Array(EMPTY_VIEW.buffer);
try {
  EMPTY_VIEW.getInt8(0);
} catch (e) {
  if (!(e instanceof RangeError)) {
    throw new Error("This module is not supported in the current JavaScript engine because DataView does not throw RangeError on out-of-bounds access");
  }
}
var MORE_DATA = new RangeError("Insufficient data");
var sharedCachedKeyDecoder = new CachedKeyDecoder();
var Decoder = class _Decoder {
  constructor(options) {
    __publicField(this, "extensionCodec");
    __publicField(this, "context");
    __publicField(this, "useBigInt64");
    __publicField(this, "rawStrings");
    __publicField(this, "maxStrLength");
    __publicField(this, "maxBinLength");
    __publicField(this, "maxArrayLength");
    __publicField(this, "maxMapLength");
    __publicField(this, "maxExtLength");
    __publicField(this, "keyDecoder");
    __publicField(this, "mapKeyConverter");
    __publicField(this, "totalPos", 0);
    __publicField(this, "pos", 0);
    __publicField(this, "view", EMPTY_VIEW);
    __publicField(this, "bytes", EMPTY_BYTES);
    __publicField(this, "headByte", HEAD_BYTE_REQUIRED);
    __publicField(this, "stack", new StackPool());
    __publicField(this, "entered", false);
    this.extensionCodec = options?.extensionCodec ?? ExtensionCodec.defaultCodec;
    this.context = options?.context;
    this.useBigInt64 = options?.useBigInt64 ?? false;
    this.rawStrings = options?.rawStrings ?? false;
    this.maxStrLength = options?.maxStrLength ?? UINT32_MAX;
    this.maxBinLength = options?.maxBinLength ?? UINT32_MAX;
    this.maxArrayLength = options?.maxArrayLength ?? UINT32_MAX;
    this.maxMapLength = options?.maxMapLength ?? UINT32_MAX;
    this.maxExtLength = options?.maxExtLength ?? UINT32_MAX;
    this.keyDecoder = options?.keyDecoder !== void 0 ? options.keyDecoder : sharedCachedKeyDecoder;
    this.mapKeyConverter = options?.mapKeyConverter ?? mapKeyConverter;
  }
  clone() {
    return new _Decoder({
      extensionCodec: this.extensionCodec,
      context: this.context,
      useBigInt64: this.useBigInt64,
      rawStrings: this.rawStrings,
      maxStrLength: this.maxStrLength,
      maxBinLength: this.maxBinLength,
      maxArrayLength: this.maxArrayLength,
      maxMapLength: this.maxMapLength,
      maxExtLength: this.maxExtLength,
      keyDecoder: this.keyDecoder
    });
  }
  reinitializeState() {
    this.totalPos = 0;
    this.headByte = HEAD_BYTE_REQUIRED;
    this.stack.reset();
  }
  setBuffer(buffer) {
    const bytes = ensureUint8Array(buffer);
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }
  appendBuffer(buffer) {
    if (this.headByte === HEAD_BYTE_REQUIRED && !this.hasRemaining(1)) {
      this.setBuffer(buffer);
    } else {
      const remainingData = this.bytes.subarray(this.pos);
      const newData = ensureUint8Array(buffer);
      const newBuffer = new Uint8Array(remainingData.length + newData.length);
      newBuffer.set(remainingData);
      newBuffer.set(newData, remainingData.length);
      this.setBuffer(newBuffer);
    }
  }
  hasRemaining(size) {
    return this.view.byteLength - this.pos >= size;
  }
  createExtraByteError(posToShow) {
    const { view, pos } = this;
    return new RangeError(`Extra ${view.byteLength - pos} of ${view.byteLength} byte(s) found at buffer[${posToShow}]`);
  }
  /**
   * @throws {@link DecodeError}
   * @throws {@link RangeError}
   */
  decode(buffer) {
    if (this.entered) {
      const instance = this.clone();
      return instance.decode(buffer);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.setBuffer(buffer);
      const object = this.doDecodeSync();
      if (this.hasRemaining(1)) {
        throw this.createExtraByteError(this.pos);
      }
      return object;
    } finally {
      this.entered = false;
    }
  }
  *decodeMulti(buffer) {
    if (this.entered) {
      const instance = this.clone();
      yield* instance.decodeMulti(buffer);
      return;
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.setBuffer(buffer);
      while (this.hasRemaining(1)) {
        yield this.doDecodeSync();
      }
    } finally {
      this.entered = false;
    }
  }
  async decodeAsync(stream) {
    if (this.entered) {
      const instance = this.clone();
      return instance.decodeAsync(stream);
    }
    try {
      this.entered = true;
      let decoded = false;
      let object;
      for await (const buffer of stream) {
        if (decoded) {
          this.entered = false;
          throw this.createExtraByteError(this.totalPos);
        }
        this.appendBuffer(buffer);
        try {
          object = this.doDecodeSync();
          decoded = true;
        } catch (e) {
          if (!(e instanceof RangeError)) {
            throw e;
          }
        }
        this.totalPos += this.pos;
      }
      if (decoded) {
        if (this.hasRemaining(1)) {
          throw this.createExtraByteError(this.totalPos);
        }
        return object;
      }
      const { headByte, pos, totalPos } = this;
      throw new RangeError(`Insufficient data in parsing ${prettyByte(headByte)} at ${totalPos} (${pos} in the current buffer)`);
    } finally {
      this.entered = false;
    }
  }
  decodeArrayStream(stream) {
    return this.decodeMultiAsync(stream, true);
  }
  decodeStream(stream) {
    return this.decodeMultiAsync(stream, false);
  }
  async *decodeMultiAsync(stream, isArray) {
    if (this.entered) {
      const instance = this.clone();
      yield* instance.decodeMultiAsync(stream, isArray);
      return;
    }
    try {
      this.entered = true;
      let isArrayHeaderRequired = isArray;
      let arrayItemsLeft = -1;
      for await (const buffer of stream) {
        if (isArray && arrayItemsLeft === 0) {
          throw this.createExtraByteError(this.totalPos);
        }
        this.appendBuffer(buffer);
        if (isArrayHeaderRequired) {
          arrayItemsLeft = this.readArraySize();
          isArrayHeaderRequired = false;
          this.complete();
        }
        try {
          while (true) {
            yield this.doDecodeSync();
            if (--arrayItemsLeft === 0) {
              break;
            }
          }
        } catch (e) {
          if (!(e instanceof RangeError)) {
            throw e;
          }
        }
        this.totalPos += this.pos;
      }
    } finally {
      this.entered = false;
    }
  }
  doDecodeSync() {
    DECODE: while (true) {
      const headByte = this.readHeadByte();
      let object;
      if (headByte >= 224) {
        object = headByte - 256;
      } else if (headByte < 192) {
        if (headByte < 128) {
          object = headByte;
        } else if (headByte < 144) {
          const size = headByte - 128;
          if (size !== 0) {
            this.pushMapState(size);
            this.complete();
            continue DECODE;
          } else {
            object = {};
          }
        } else if (headByte < 160) {
          const size = headByte - 144;
          if (size !== 0) {
            this.pushArrayState(size);
            this.complete();
            continue DECODE;
          } else {
            object = [];
          }
        } else {
          const byteLength = headByte - 160;
          object = this.decodeString(byteLength, 0);
        }
      } else if (headByte === 192) {
        object = null;
      } else if (headByte === 194) {
        object = false;
      } else if (headByte === 195) {
        object = true;
      } else if (headByte === 202) {
        object = this.readF32();
      } else if (headByte === 203) {
        object = this.readF64();
      } else if (headByte === 204) {
        object = this.readU8();
      } else if (headByte === 205) {
        object = this.readU16();
      } else if (headByte === 206) {
        object = this.readU32();
      } else if (headByte === 207) {
        if (this.useBigInt64) {
          object = this.readU64AsBigInt();
        } else {
          object = this.readU64();
        }
      } else if (headByte === 208) {
        object = this.readI8();
      } else if (headByte === 209) {
        object = this.readI16();
      } else if (headByte === 210) {
        object = this.readI32();
      } else if (headByte === 211) {
        if (this.useBigInt64) {
          object = this.readI64AsBigInt();
        } else {
          object = this.readI64();
        }
      } else if (headByte === 217) {
        const byteLength = this.lookU8();
        object = this.decodeString(byteLength, 1);
      } else if (headByte === 218) {
        const byteLength = this.lookU16();
        object = this.decodeString(byteLength, 2);
      } else if (headByte === 219) {
        const byteLength = this.lookU32();
        object = this.decodeString(byteLength, 4);
      } else if (headByte === 220) {
        const size = this.readU16();
        if (size !== 0) {
          this.pushArrayState(size);
          this.complete();
          continue DECODE;
        } else {
          object = [];
        }
      } else if (headByte === 221) {
        const size = this.readU32();
        if (size !== 0) {
          this.pushArrayState(size);
          this.complete();
          continue DECODE;
        } else {
          object = [];
        }
      } else if (headByte === 222) {
        const size = this.readU16();
        if (size !== 0) {
          this.pushMapState(size);
          this.complete();
          continue DECODE;
        } else {
          object = {};
        }
      } else if (headByte === 223) {
        const size = this.readU32();
        if (size !== 0) {
          this.pushMapState(size);
          this.complete();
          continue DECODE;
        } else {
          object = {};
        }
      } else if (headByte === 196) {
        const size = this.lookU8();
        object = this.decodeBinary(size, 1);
      } else if (headByte === 197) {
        const size = this.lookU16();
        object = this.decodeBinary(size, 2);
      } else if (headByte === 198) {
        const size = this.lookU32();
        object = this.decodeBinary(size, 4);
      } else if (headByte === 212) {
        object = this.decodeExtension(1, 0);
      } else if (headByte === 213) {
        object = this.decodeExtension(2, 0);
      } else if (headByte === 214) {
        object = this.decodeExtension(4, 0);
      } else if (headByte === 215) {
        object = this.decodeExtension(8, 0);
      } else if (headByte === 216) {
        object = this.decodeExtension(16, 0);
      } else if (headByte === 199) {
        const size = this.lookU8();
        object = this.decodeExtension(size, 1);
      } else if (headByte === 200) {
        const size = this.lookU16();
        object = this.decodeExtension(size, 2);
      } else if (headByte === 201) {
        const size = this.lookU32();
        object = this.decodeExtension(size, 4);
      } else {
        throw new DecodeError(`Unrecognized type byte: ${prettyByte(headByte)}`);
      }
      this.complete();
      const stack = this.stack;
      while (stack.length > 0) {
        const state = stack.top();
        if (state.type === STATE_ARRAY) {
          state.array[state.position] = object;
          state.position++;
          if (state.position === state.size) {
            object = state.array;
            stack.release(state);
          } else {
            continue DECODE;
          }
        } else if (state.type === STATE_MAP_KEY) {
          if (object === "__proto__") {
            throw new DecodeError("The key __proto__ is not allowed");
          }
          state.key = this.mapKeyConverter(object);
          state.type = STATE_MAP_VALUE;
          continue DECODE;
        } else {
          state.map[state.key] = object;
          state.readCount++;
          if (state.readCount === state.size) {
            object = state.map;
            stack.release(state);
          } else {
            state.key = null;
            state.type = STATE_MAP_KEY;
            continue DECODE;
          }
        }
      }
      return object;
    }
  }
  readHeadByte() {
    if (this.headByte === HEAD_BYTE_REQUIRED) {
      this.headByte = this.readU8();
    }
    return this.headByte;
  }
  complete() {
    this.headByte = HEAD_BYTE_REQUIRED;
  }
  readArraySize() {
    const headByte = this.readHeadByte();
    switch (headByte) {
      case 220:
        return this.readU16();
      case 221:
        return this.readU32();
      default: {
        if (headByte < 160) {
          return headByte - 144;
        } else {
          throw new DecodeError(`Unrecognized array type byte: ${prettyByte(headByte)}`);
        }
      }
    }
  }
  pushMapState(size) {
    if (size > this.maxMapLength) {
      throw new DecodeError(`Max length exceeded: map length (${size}) > maxMapLengthLength (${this.maxMapLength})`);
    }
    this.stack.pushMapState(size);
  }
  pushArrayState(size) {
    if (size > this.maxArrayLength) {
      throw new DecodeError(`Max length exceeded: array length (${size}) > maxArrayLength (${this.maxArrayLength})`);
    }
    this.stack.pushArrayState(size);
  }
  decodeString(byteLength, headerOffset) {
    if (!this.rawStrings || this.stateIsMapKey()) {
      return this.decodeUtf8String(byteLength, headerOffset);
    }
    return this.decodeBinary(byteLength, headerOffset);
  }
  /**
   * @throws {@link RangeError}
   */
  decodeUtf8String(byteLength, headerOffset) {
    if (byteLength > this.maxStrLength) {
      throw new DecodeError(`Max length exceeded: UTF-8 byte length (${byteLength}) > maxStrLength (${this.maxStrLength})`);
    }
    if (this.bytes.byteLength < this.pos + headerOffset + byteLength) {
      throw MORE_DATA;
    }
    const offset = this.pos + headerOffset;
    let object;
    if (this.stateIsMapKey() && this.keyDecoder?.canBeCached(byteLength)) {
      object = this.keyDecoder.decode(this.bytes, offset, byteLength);
    } else {
      object = utf8Decode(this.bytes, offset, byteLength);
    }
    this.pos += headerOffset + byteLength;
    return object;
  }
  stateIsMapKey() {
    if (this.stack.length > 0) {
      const state = this.stack.top();
      return state.type === STATE_MAP_KEY;
    }
    return false;
  }
  /**
   * @throws {@link RangeError}
   */
  decodeBinary(byteLength, headOffset) {
    if (byteLength > this.maxBinLength) {
      throw new DecodeError(`Max length exceeded: bin length (${byteLength}) > maxBinLength (${this.maxBinLength})`);
    }
    if (!this.hasRemaining(byteLength + headOffset)) {
      throw MORE_DATA;
    }
    const offset = this.pos + headOffset;
    const object = this.bytes.subarray(offset, offset + byteLength);
    this.pos += headOffset + byteLength;
    return object;
  }
  decodeExtension(size, headOffset) {
    if (size > this.maxExtLength) {
      throw new DecodeError(`Max length exceeded: ext length (${size}) > maxExtLength (${this.maxExtLength})`);
    }
    const extType = this.view.getInt8(this.pos + headOffset);
    const data = this.decodeBinary(
      size,
      headOffset + 1
      /* extType */
    );
    return this.extensionCodec.decode(data, extType, this.context);
  }
  lookU8() {
    return this.view.getUint8(this.pos);
  }
  lookU16() {
    return this.view.getUint16(this.pos);
  }
  lookU32() {
    return this.view.getUint32(this.pos);
  }
  readU8() {
    const value = this.view.getUint8(this.pos);
    this.pos++;
    return value;
  }
  readI8() {
    const value = this.view.getInt8(this.pos);
    this.pos++;
    return value;
  }
  readU16() {
    const value = this.view.getUint16(this.pos);
    this.pos += 2;
    return value;
  }
  readI16() {
    const value = this.view.getInt16(this.pos);
    this.pos += 2;
    return value;
  }
  readU32() {
    const value = this.view.getUint32(this.pos);
    this.pos += 4;
    return value;
  }
  readI32() {
    const value = this.view.getInt32(this.pos);
    this.pos += 4;
    return value;
  }
  readU64() {
    const value = getUint64(this.view, this.pos);
    this.pos += 8;
    return value;
  }
  readI64() {
    const value = getInt64(this.view, this.pos);
    this.pos += 8;
    return value;
  }
  readU64AsBigInt() {
    const value = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return value;
  }
  readI64AsBigInt() {
    const value = this.view.getBigInt64(this.pos);
    this.pos += 8;
    return value;
  }
  readF32() {
    const value = this.view.getFloat32(this.pos);
    this.pos += 4;
    return value;
  }
  readF64() {
    const value = this.view.getFloat64(this.pos);
    this.pos += 8;
    return value;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/decode.mjs
function decode(buffer, options) {
  const decoder = new Decoder(options);
  return decoder.decode(buffer);
}

// src/codec.ts
var json = {
  subprotocol: "chathub.v1.json",
  encode: (frame) => JSON.stringify(frame),
  decode(data) {
    if (typeof data !== "string") return void 0;
    try {
      return JSON.parse(data);
    } catch {
      return void 0;
    }
  }
};
var msgpack = {
  subprotocol: "chathub.v1.msgpack",
  encode: (frame) => encode(frame, { ignoreUndefined: true }),
  decode(data) {
    let bytes;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else return void 0;
    try {
      return decode(bytes);
    } catch {
      return void 0;
    }
  }
};
function codecOf(name) {
  return name === "msgpack" ? msgpack : json;
}

// src/client.ts
function newClientMsgId() {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID().replace(/-/g, "").slice(0, 24);
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
}
function cursorAfter(a, b) {
  if (!b) return true;
  const [am, an] = a.split("-").map(Number);
  const [bm, bn] = b.split("-").map(Number);
  return am > bm || am === bm && an > bn;
}
var sleep = (ms) => new Promise((r) => setTimeout(r, ms));
var ChathubClient = class {
  /** A client; it connects on {@link ChathubClient.start}. */
  constructor(options) {
    /** Where the connection is. */
    __publicField(this, "state", "idle");
    /** The latest `welcome` (who you are, the limits), once connected. */
    __publicField(this, "welcome", null);
    __publicField(this, "urls");
    __publicField(this, "urlIndex", 0);
    __publicField(this, "options");
    __publicField(this, "codec");
    __publicField(this, "WebSocketImpl");
    __publicField(this, "ws", null);
    __publicField(this, "nextId", 1);
    __publicField(this, "pending", /* @__PURE__ */ new Map());
    /** conversation → the last seq delivered (`null`: live only, nothing seen yet). */
    __publicField(this, "followed", /* @__PURE__ */ new Map());
    __publicField(this, "inboxCursor", null);
    __publicField(this, "followInbox", false);
    /** The welcome's history_id under which the seqs above were seen. */
    __publicField(this, "historyId", "");
    __publicField(this, "attempt", 0);
    __publicField(this, "everOpened", false);
    __publicField(this, "stopped", false);
    __publicField(this, "retryTimer", null);
    __publicField(this, "openWaiters", []);
    __publicField(this, "listeners", /* @__PURE__ */ new Map());
    __publicField(this, "sendQueue", []);
    __publicField(this, "pumping", false);
    __publicField(this, "tokenSource");
    this.urls = typeof options.url === "string" ? [options.url] : [...options.url];
    if (this.urls.length === 0) throw new TypeError("chathub: give at least one url");
    this.tokenSource = options.token;
    this.codec = codecOf(options.codec ?? "json");
    const impl = options.WebSocket ?? globalThis.WebSocket;
    if (!impl) throw new TypeError("chathub: no WebSocket here; pass `WebSocket` (e.g. from the `ws` package)");
    this.WebSocketImpl = impl;
    this.options = {
      requestTimeoutMs: options.requestTimeoutMs ?? 15e3,
      reconnectDelayMs: options.reconnectDelayMs ?? 250,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? 5e3,
      maxQueuedSends: options.maxQueuedSends ?? 1e3,
      maxSendAttempts: options.maxSendAttempts ?? 8,
      iteratorBuffer: options.iteratorBuffer ?? 1e4
    };
  }
  /** Connects, and keeps reconnecting until {@link ChathubClient.close}. */
  start() {
    this.stopped = false;
    void this.open();
    return this;
  }
  /** Closes for good: pending requests and queued sends reject with `closed`. */
  close() {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const closed = () => new ChathubError("closed", "the client was closed");
    for (const w of this.openWaiters.splice(0)) w.reject(closed());
    for (const s of this.sendQueue.splice(0)) s.reject(closed());
    this.failPending(closed);
    if (this.ws) this.ws.close(1e3, "bye");
    this.setState("closed", { code: 1e3 });
  }
  /** Calls `listener` with each notice named `type`; returns a function that stops it. */
  on(type, listener) {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, set = /* @__PURE__ */ new Set());
    set.add(listener);
    return () => set.delete(listener);
  }
  /**
   * The DOM's `EventTarget` shape of {@link ChathubClient.on}: `listener` gets
   * `{type, detail}` (pages written for `CustomEvent`s keep working).
   */
  addEventListener(type, listener) {
    const wrapped = (detail) => listener({ type, detail });
    listener.__chathub = this.on(type, wrapped);
  }
  /** Stops a listener given to {@link ChathubClient.addEventListener}. */
  removeEventListener(_type, listener) {
    const stop = listener.__chathub;
    if (typeof stop === "function") stop();
  }
  /**
   * Every pushed frame (events, queue changes, typing, reads, ownership and tenant
   * notices), in order, as an async iterator; `return()` (a `break`) stops it. It holds
   * at most `iteratorBuffer` frames not yet read, then fails with `overflow`.
   */
  frames() {
    const buffer = [];
    let waiting = null;
    let failed = null;
    let fail = null;
    let done = false;
    const types = ["event", "queue", "typing", "read", "ownership_lost", "assigned", "mention", "alert", "queue_position", "hours", "erased", "tenant", "presence"];
    const stops = types.map(
      (t) => this.on(t, (frame) => {
        if (done) return;
        if (waiting) {
          const w = waiting;
          waiting = null;
          fail = null;
          w({ value: frame, done: false });
        } else if (buffer.length >= this.options.iteratorBuffer) {
          failed = new ChathubError("overflow", `more than ${this.options.iteratorBuffer} frames not read`);
          finish();
        } else {
          buffer.push(frame);
        }
      })
    );
    const stopClosed = this.on("state", ({ state }) => {
      if (state === "closed" || state === "refused") finish();
    });
    const finish = () => {
      if (done) return;
      done = true;
      for (const s of stops) s();
      stopClosed();
      if (fail && failed) fail(failed);
      else if (waiting) waiting({ value: void 0, done: true });
      waiting = null;
      fail = null;
    };
    const iterator = {
      next: () => {
        const value = buffer.shift();
        if (value) return Promise.resolve({ value, done: false });
        if (failed) return Promise.reject(failed);
        if (done) return Promise.resolve({ value: void 0, done: true });
        return new Promise((resolve, reject) => {
          waiting = resolve;
          fail = reject;
        });
      },
      return: () => {
        finish();
        return Promise.resolve({ value: void 0, done: true });
      },
      [Symbol.asyncIterator]: () => iterator
    };
    return iterator;
  }
  /** Resolves when the connection is open (at once if it is); rejects after `timeoutMs`. */
  whenOpen(timeoutMs = 2e4) {
    if (this.state === "open") return Promise.resolve();
    if (this.stopped) return Promise.reject(new ChathubError("closed", "the client is not running"));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        }
      };
      const timer = setTimeout(() => {
        this.openWaiters = this.openWaiters.filter((w) => w !== waiter);
        reject(new ChathubError("timeout", "not connected"));
      }, timeoutMs);
      this.openWaiters.push(waiter);
    });
  }
  /**
   * Sends one request and resolves with its result; rejects with a {@link ChathubError}
   * (`disconnected` at once when not connected: use {@link ChathubClient.send} for
   * messages, which waits and retries).
   */
  request(op, fields) {
    const ws = this.ws;
    if (this.state !== "open" || !ws) {
      return Promise.reject(new ChathubError("disconnected", "not connected"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ChathubError("timeout", `no reply to ${op} in ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        ws.send(this.codec.encode({ id, op, ...fields }));
      } catch {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new ChathubError("disconnected", "the connection was lost"));
      }
    });
  }
  /**
   * Sends a message. It waits while offline, goes out in the order sends were made, and
   * is retried across reconnects with the same `client_msg_id` (given, or made here)
   * until the server acknowledges it; the server records it once and answers every retry
   * with the same acknowledgement. Refusals (`conflict`, `chat_disabled`, …) reject at once.
   */
  send(fields) {
    if (this.stopped && this.state !== "idle") {
      return Promise.reject(new ChathubError("closed", "the client was closed"));
    }
    if (this.sendQueue.length >= this.options.maxQueuedSends) {
      return Promise.reject(new ChathubError("queue_full", `${this.sendQueue.length} sends are waiting already`));
    }
    const body = { ...fields, client_msg_id: fields.client_msg_id ?? newClientMsgId() };
    return new Promise((resolve, reject) => {
      this.sendQueue.push({ body, resolve, reject, attempts: 0 });
      void this.pumpSends();
    });
  }
  /** Sends queued: one at a time (their order is the conversation's), while open. */
  async pumpSends() {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.sendQueue.length > 0 && !this.stopped) {
        if (this.state !== "open") {
          try {
            await this.whenOpen(6e4);
          } catch {
            continue;
          }
        }
        const head = this.sendQueue[0];
        try {
          const ack = await this.request("send", head.body);
          this.sendQueue.shift();
          head.resolve(ack);
        } catch (e) {
          const error = e;
          if (error.code === "disconnected") continue;
          head.attempts += 1;
          if (!error.retryable || head.attempts >= this.options.maxSendAttempts) {
            this.sendQueue.shift();
            head.reject(error);
          } else {
            await sleep(Math.min(5e3, 200 * 2 ** (head.attempts - 1)));
          }
        }
      }
    } finally {
      this.pumping = false;
    }
  }
  /**
   * Follows a conversation: its events arrive as `event` notices, each once. With
   * `since`, the events after it are replayed first. After any reconnect the client
   * resumes from the last `seq` it delivered.
   */
  async subscribe(conversation, since = null) {
    this.followed.set(conversation, since);
    const fields = { conversation };
    if (since !== null) {
      fields.since = since;
      if (this.historyId) fields.history_id = this.historyId;
    }
    const result = await this.request("subscribe", fields);
    const last = this.followed.get(conversation);
    if (last === void 0 || last === null || result.seq > last) this.followed.set(conversation, result.seq);
    return result;
  }
  /** Stops following a conversation. */
  async unsubscribe(conversation) {
    this.followed.delete(conversation);
    if (this.state === "open") await this.request("unsubscribe", { conversation }).catch(() => void 0);
  }
  /** The last `seq` delivered of a followed conversation (`undefined`: not followed). */
  lastSeq(conversation) {
    return this.followed.get(conversation);
  }
  /** Agents: follow the queue's changes (`queue` notices), resumed by cursor after reconnects. */
  async followQueue() {
    this.followInbox = true;
    const result = await this.request("inbox", {});
    if (result.cursor && cursorAfter(result.cursor, this.inboxCursor)) this.inboxCursor = result.cursor;
    return result;
  }
  emit(type, detail) {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(detail);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
  setState(state, extra = {}) {
    this.state = state;
    this.emit("state", { state, attempt: this.attempt, ...extra });
  }
  failPending(error) {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(error());
    }
    this.pending.clear();
  }
  async open() {
    let token;
    try {
      token = typeof this.tokenSource === "function" ? await this.tokenSource() : this.tokenSource;
    } catch {
      this.scheduleReconnect(void 0);
      return;
    }
    if (this.stopped) return;
    const url = this.urls[this.urlIndex % this.urls.length];
    const sep = url.includes("?") ? "&" : "?";
    let ws;
    try {
      ws = new this.WebSocketImpl(`${url}${sep}token=${encodeURIComponent(token)}`, this.codec.subprotocol);
    } catch {
      this.scheduleReconnect(void 0);
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.setState(this.everOpened ? "reconnecting" : "connecting");
    ws.onmessage = (m) => this.onMessage(m.data);
    ws.onclose = (ev) => this.onClose(ws, ev.code, ev.reason);
    ws.onerror = () => void 0;
  }
  onClose(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.failPending(() => new ChathubError("disconnected", "the connection was lost"));
    if (this.stopped) return;
    const refreshable = typeof this.tokenSource === "function";
    if (!this.everOpened && !refreshable && this.attempt + 1 >= this.urls.length) {
      this.stopped = true;
      this.setState("refused", { code });
      this.rejectWaiters("refused");
      return;
    }
    if (FATAL_CLOSE_CODES.has(code) && !(refreshable && code === 1008)) {
      this.stopped = true;
      this.setState("closed", { code, reason });
      this.rejectWaiters("closed");
      return;
    }
    this.scheduleReconnect(code, reason);
  }
  rejectWaiters(why) {
    const error = () => new ChathubError("closed", `the connection was ${why}`);
    for (const w of this.openWaiters.splice(0)) w.reject(error());
    for (const s of this.sendQueue.splice(0)) s.reject(error());
  }
  scheduleReconnect(code, reason) {
    this.attempt += 1;
    this.urlIndex += 1;
    this.setState("reconnecting", { code, reason });
    const base = Math.min(this.options.maxReconnectDelayMs, this.options.reconnectDelayMs * 2 ** Math.min(this.attempt - 1, 8));
    const delay = base * (0.5 + Math.random() / 2);
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }
  onMessage(data) {
    const frame = this.codec.decode(data);
    if (!frame || typeof frame !== "object") return;
    switch (frame.type) {
      case "welcome": {
        const resuming = this.everOpened;
        this.welcome = frame;
        if (!resuming) this.historyId = frame.history_id ?? "";
        this.everOpened = true;
        this.attempt = 0;
        this.setState("open");
        this.emit("welcome", frame);
        for (const w of this.openWaiters.splice(0)) w.resolve();
        if (resuming) void this.resume();
        break;
      }
      case "ok":
      case "err": {
        if (frame.id === void 0 || frame.id === null) {
          if (frame.type === "err") this.emit("protocol-error", frame);
          break;
        }
        const p = this.pending.get(frame.id);
        if (!p) break;
        this.pending.delete(frame.id);
        clearTimeout(p.timer);
        if (frame.type === "ok") {
          const { op: _op, ...result } = frame.result;
          p.resolve(result);
        } else {
          p.reject(ChathubError.fromFrame(frame));
        }
        break;
      }
      case "event": {
        const last = this.followed.get(frame.conversation);
        if (last === void 0) break;
        if (last !== null && frame.seq <= last) break;
        this.followed.set(frame.conversation, frame.seq);
        this.emit("event", frame);
        break;
      }
      case "erased":
        this.followed.delete(frame.conversation);
        this.emit("erased", frame);
        break;
      case "queue":
        if (frame.cursor && cursorAfter(frame.cursor, this.inboxCursor)) this.inboxCursor = frame.cursor;
        this.emit("queue", frame);
        break;
      default:
        this.emit(frame.type, frame);
    }
  }
  async resume() {
    let replayed = 0;
    const truncated = [];
    let inboxTruncated = false;
    try {
      for (const [conversation, last] of [...this.followed]) {
        const r = await this.subscribe(conversation, last);
        replayed += r.replayed || 0;
        if (r.history_truncated || r.history_lost) truncated.push(conversation);
      }
      this.historyId = this.welcome?.history_id ?? "";
      if (this.followInbox) {
        const r = await this.request("inbox", this.inboxCursor ? { since: this.inboxCursor } : {});
        replayed += r.replayed || 0;
        inboxTruncated = !!r.history_truncated;
        if (r.cursor && cursorAfter(r.cursor, this.inboxCursor)) this.inboxCursor = r.cursor;
      }
    } catch (e) {
      if (e.code === "disconnected") return;
    }
    this.emit("resumed", { replayed, truncated, inboxTruncated });
  }
};

// src/attachments.ts
var UPLOAD_RETRY = /* @__PURE__ */ new Set(["disconnected", "timeout", "unavailable", "conflict", "network", "expired"]);
async function uploadAttachment(client, options) {
  const { conversation, file, clientMsgId, onProgress } = options;
  const name = options.name ?? file.name;
  if (!name) throw new TypeError("chathub: give the file a name");
  let lastError;
  const sent = /* @__PURE__ */ new Map();
  const attempts = options.attempts ?? 6;
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      await client.whenOpen();
      const up = await client.request("attachment_upload", {
        conversation,
        name,
        size: file.size,
        content_type: file.type || void 0,
        client_msg_id: clientMsgId
      });
      if (up.stored) {
        onProgress?.(file.size, file.size);
        return up.stored;
      }
      const answer = up.parts?.length ? await putParts(up, file, sent, onProgress) : await putFrom(up.upload_url ?? "", file, up.received, onProgress);
      if (answer.stored) return answer.stored;
    } catch (e) {
      lastError = e;
      if (!(e instanceof ChathubError) || !UPLOAD_RETRY.has(e.code)) throw e;
      await new Promise((r) => setTimeout(r, 300 * (attempt + 1)));
    }
  }
  throw lastError;
}
function failure(status, body) {
  const code = body.code || "unavailable";
  return new ChathubError(code, body.message || `HTTP ${status}`);
}
function put(url, body, headers, onProgress) {
  const XHR = globalThis.XMLHttpRequest;
  if (XHR) {
    return new Promise((resolve, reject) => {
      const xhr = new XHR();
      xhr.open("PUT", url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => onProgress?.(e.loaded);
      xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText, etag: xhr.getResponseHeader("ETag") });
      xhr.onerror = () => reject(new ChathubError("network", "the upload broke off"));
      xhr.send(body);
    });
  }
  return fetch(url, { method: "PUT", headers, body }).then(async (res) => {
    onProgress?.(body.size);
    return { status: res.status, text: await res.text(), etag: res.headers.get("etag") };
  }).catch((e) => {
    if (e instanceof ChathubError) throw e;
    throw new ChathubError("network", "the upload broke off");
  });
}
async function putFrom(url, file, from, onProgress) {
  const headers = {};
  if (from > 0) headers["Content-Range"] = `bytes ${from}-${file.size - 1}/${file.size}`;
  const res = await put(url, from > 0 ? file.slice(from) : file, headers, (n) => onProgress?.(from + n, file.size));
  let body = {};
  try {
    body = JSON.parse(res.text);
  } catch {
  }
  if (res.status === 201 || res.status === 202) return body;
  throw failure(res.status, body);
}
async function putParts(up, file, sent, onProgress) {
  const parts = up.parts ?? [];
  const done = () => parts.filter((p) => sent.has(p.number)).reduce((n, p) => n + p.size, 0);
  for (const part of parts) {
    if (sent.has(part.number)) continue;
    const base = done();
    const res2 = await put(
      part.url,
      file.slice(part.offset, part.offset + part.size),
      {},
      (n) => onProgress?.(base + n, file.size)
    );
    if (res2.status !== 200) throw new ChathubError("unavailable", `part ${part.number}: HTTP ${res2.status}`);
    if (!res2.etag) throw new ChathubError("internal", "the bucket's CORS does not expose ETag");
    sent.set(part.number, res2.etag);
  }
  const res = await fetch(up.complete_url ?? "", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ parts: parts.map((p) => ({ number: p.number, etag: sent.get(p.number) })) })
  }).catch(() => {
    throw new ChathubError("network", "the completion broke off");
  });
  const body = await res.json().catch(() => ({}));
  if (res.status === 201 || res.status === 202) return body;
  if (res.status === 400) {
    sent.clear();
    throw new ChathubError("conflict", body.message || "the parts were refused");
  }
  throw failure(res.status, body);
}
var links = /* @__PURE__ */ new Map();
async function attachmentLink(client, conversation, attachment) {
  const hit = links.get(attachment);
  if (hit && hit.until > Date.now()) return hit.reply;
  const reply = await client.request("attachment_link", { conversation, attachment });
  links.set(attachment, { reply, until: reply.expires_at - 3e4 });
  if (links.size > 1e3) links.delete(links.keys().next().value);
  return reply;
}
function forgetAttachmentLink(attachment) {
  links.delete(attachment);
}
export {
  CLOSE_CODES,
  ChathubClient,
  ChathubError,
  FATAL_CLOSE_CODES,
  OPS,
  applyEvent,
  attachmentLink,
  codecOf,
  forgetAttachmentLink,
  newClientMsgId,
  uploadAttachment
};
