/**
 * `chathub-client`: a client of the chathub real-time chat hub for browsers, Node.js 20+
 * and React Native. Start with {@link ChathubClient}.
 *
 * @example
 * ```ts
 * import { ChathubClient } from 'chathub-client';
 *
 * const client = new ChathubClient({ url: 'ws://127.0.0.1:8080/', token }).start();
 * await client.whenOpen();
 * client.on('event', (e) => console.log(e.seq, e.event));
 * await client.subscribe('u-42');
 * await client.send({ text: 'Hello!' }); // waits offline, retried once, recorded once
 * ```
 *
 * @module
 */
export * from './protocol.js';
export { ChathubError, type ClientErrorCode } from './errors.js';
export { type Codec, type CodecName, codecOf } from './codec.js';
export {
  ChathubClient,
  newClientMsgId,
  type ClientEventName,
  type ClientEvents,
  type ClientOptions,
  type ConnectionState,
  type Resumed,
  type StateChange,
  type WebSocketConstructor,
  type WebSocketLike,
} from './client.js';
export { attachmentLink, forgetAttachmentLink, uploadAttachment, type UploadOptions } from './attachments.js';
