import { decode, encode } from '@msgpack/msgpack';
import type { ServerFrame } from './protocol.js';

/** The two subprotocols: JSON text frames, or MessagePack binary frames (same schema). */
export type CodecName = 'json' | 'msgpack';

/** How frames are written and read on one subprotocol. */
export interface Codec {
  /** The `Sec-WebSocket-Protocol` to offer. */
  readonly subprotocol: string;
  /** One request as a WebSocket message. */
  encode(frame: object): string | Uint8Array;
  /** One message from the server; `undefined` for what is not a frame. */
  decode(data: unknown): ServerFrame | undefined;
}

const json: Codec = {
  subprotocol: 'chathub.v1.json',
  encode: (frame) => JSON.stringify(frame),
  decode(data) {
    if (typeof data !== 'string') return undefined;
    try {
      return JSON.parse(data) as ServerFrame;
    } catch {
      return undefined;
    }
  },
};

const msgpack: Codec = {
  subprotocol: 'chathub.v1.msgpack',
  encode: (frame) => encode(frame, { ignoreUndefined: true }),
  decode(data) {
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else return undefined;
    try {
      return decode(bytes) as ServerFrame;
    } catch {
      return undefined;
    }
  },
};

/** The codec of a subprotocol. */
export function codecOf(name: CodecName): Codec {
  return name === 'msgpack' ? msgpack : json;
}
