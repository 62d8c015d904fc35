import type { ErrFrame, ErrorCode } from './protocol.js';

/**
 * A code of a failure the client itself reports: `disconnected` (the connection was lost
 * before the reply), `timeout` (no reply in time), `closed` (the client was closed),
 * `queue_full` (too many sends waiting), `overflow` (an event iterator fell too far
 * behind), `network` (an HTTP transfer broke off).
 */
export type ClientErrorCode = 'disconnected' | 'timeout' | 'closed' | 'queue_full' | 'overflow' | 'network';

/** A failed request: `code` is the protocol's error code or a {@link ClientErrorCode}. */
export class ChathubError extends Error {
  /** What went wrong (match on it). */
  readonly code: ErrorCode | ClientErrorCode;
  /** The server's `err` frame, when the server answered. */
  readonly frame?: ErrFrame;

  constructor(code: ErrorCode | ClientErrorCode, message: string, frame?: ErrFrame) {
    super(message || code);
    this.name = 'ChathubError';
    this.code = code;
    this.frame = frame;
  }

  /** The error of a server's `err` frame. */
  static fromFrame(frame: ErrFrame): ChathubError {
    return new ChathubError(frame.code, frame.message, frame);
  }

  /**
   * Whether trying again (with the same `client_msg_id` for a send) may succeed: the
   * connection broke, the reply was late, or the server was briefly unavailable.
   */
  get retryable(): boolean {
    return (
      this.code === 'disconnected' ||
      this.code === 'timeout' ||
      this.code === 'unavailable' ||
      this.code === 'rate_limited' ||
      this.code === 'network'
    );
  }
}
