import type { ChathubClient } from './client.js';
import { ChathubError } from './errors.js';
import type { AttachmentCard, Replies } from './protocol.js';

/** What {@link uploadAttachment} uploads. */
export interface UploadOptions {
  /** The conversation (end users may leave it out). */
  conversation?: string;
  /** The file: a `File` or `Blob` (browsers, Node.js 20+). */
  file: Blob;
  /** Its name (default: the `File`'s). */
  name?: string;
  /** The idempotency key of the message it is for (use the same in the `send`). */
  clientMsgId: string;
  /** Follows the upload: bytes the server has, of the total. */
  onProgress?: (sent: number, total: number) => void;
  /** Attempts across broken connections before giving up (default 6). */
  attempts?: number;
}

/** Codes after which an upload is tried again, resuming from what the server has. */
const UPLOAD_RETRY = new Set(['disconnected', 'timeout', 'unavailable', 'conflict', 'network', 'expired']);

/**
 * Uploads a file for a message and resolves with its stored card (PROTOCOL.md,
 * "Attachments"); then `send({attachment: card.id, client_msg_id})`. After a broken
 * connection it asks again with the same `client_msg_id` (the same attachment) and sends
 * only the bytes the server lacks; on S3 it puts the parts straight to the bucket.
 */
export async function uploadAttachment(client: ChathubClient, options: UploadOptions): Promise<AttachmentCard> {
  const { conversation, file, clientMsgId, onProgress } = options;
  const name = options.name ?? (file as Blob & { name?: string }).name;
  if (!name) throw new TypeError('chathub: give the file a name');
  let lastError: unknown;
  /** Direct uploads: part number → the ETag S3 gave it, kept across attempts. */
  const sent = new Map<number, string>();
  const attempts = options.attempts ?? 6;
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      await client.whenOpen();
      const up = await client.request('attachment_upload', {
        conversation,
        name,
        size: file.size,
        content_type: file.type || undefined,
        client_msg_id: clientMsgId,
      });
      if (up.stored) {
        onProgress?.(file.size, file.size);
        return up.stored;
      }
      const answer = up.parts?.length
        ? await putParts(up, file, sent, onProgress)
        : await putFrom(up.upload_url ?? '', file, up.received, onProgress);
      if (answer.stored) return answer.stored;
      // 202: not all there (the connection broke mid-body): go on from `received`.
    } catch (e) {
      lastError = e;
      if (!(e instanceof ChathubError) || !UPLOAD_RETRY.has(e.code)) throw e;
      await new Promise((r) => setTimeout(r, 300 * (attempt + 1)));
    }
  }
  throw lastError;
}

type Answer = { stored?: AttachmentCard; code?: string; message?: string };

/** An HTTP answer as a {@link ChathubError}. */
function failure(status: number, body: Answer): ChathubError {
  const code = (body.code as ChathubError['code']) || 'unavailable';
  return new ChathubError(code, body.message || `HTTP ${status}`);
}

/** A PUT of `body` to `url`: by XHR where there is one (upload progress), else fetch. */
function put(
  url: string,
  body: Blob,
  headers: Record<string, string>,
  onProgress?: (loaded: number) => void,
): Promise<{ status: number; text: string; etag: string | null }> {
  const XHR = (globalThis as { XMLHttpRequest?: new () => XMLHttpRequest }).XMLHttpRequest;
  if (XHR) {
    return new Promise((resolve, reject) => {
      const xhr = new XHR();
      xhr.open('PUT', url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => onProgress?.(e.loaded);
      xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText, etag: xhr.getResponseHeader('ETag') });
      xhr.onerror = () => reject(new ChathubError('network', 'the upload broke off'));
      xhr.send(body);
    });
  }
  return fetch(url, { method: 'PUT', headers, body })
    .then(async (res) => {
      onProgress?.(body.size);
      return { status: res.status, text: await res.text(), etag: res.headers.get('etag') };
    })
    .catch((e: unknown) => {
      if (e instanceof ChathubError) throw e;
      throw new ChathubError('network', 'the upload broke off');
    });
}

/** PUTs `file` from byte `from` on (a range when resuming); resolves with the answer. */
async function putFrom(
  url: string,
  file: Blob,
  from: number,
  onProgress?: (sent: number, total: number) => void,
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (from > 0) headers['Content-Range'] = `bytes ${from}-${file.size - 1}/${file.size}`;
  const res = await put(url, from > 0 ? file.slice(from) : file, headers, (n) => onProgress?.(from + n, file.size));
  let body: Answer = {};
  try {
    body = JSON.parse(res.text) as Answer;
  } catch {
    // Not JSON: a proxy's error page.
  }
  if (res.status === 201 || res.status === 202) return body;
  throw failure(res.status, body);
}

/**
 * A direct upload (the server's store is S3): PUTs each part not yet `sent` to its
 * presigned URL, then POSTs the ETags to the node; resolves with its answer.
 */
async function putParts(
  up: Replies['attachment_upload'],
  file: Blob,
  sent: Map<number, string>,
  onProgress?: (sent: number, total: number) => void,
): Promise<Answer> {
  const parts = up.parts ?? [];
  const done = () => parts.filter((p) => sent.has(p.number)).reduce((n, p) => n + p.size, 0);
  for (const part of parts) {
    if (sent.has(part.number)) continue;
    const base = done();
    const res = await put(part.url, file.slice(part.offset, part.offset + part.size), {}, (n) =>
      onProgress?.(base + n, file.size),
    );
    if (res.status !== 200) throw new ChathubError('unavailable', `part ${part.number}: HTTP ${res.status}`);
    if (!res.etag) throw new ChathubError('internal', "the bucket's CORS does not expose ETag");
    sent.set(part.number, res.etag);
  }
  const res = await fetch(up.complete_url ?? '', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ parts: parts.map((p) => ({ number: p.number, etag: sent.get(p.number) })) }),
  }).catch(() => {
    throw new ChathubError('network', 'the completion broke off');
  });
  const body = (await res.json().catch(() => ({}))) as Answer;
  if (res.status === 201 || res.status === 202) return body;
  if (res.status === 400) {
    // The parts did not make the file: the next attempt sends them all again.
    sent.clear();
    throw new ChathubError('conflict', body.message || 'the parts were refused');
  }
  throw failure(res.status, body);
}

/** attachment id → its links and until when they are reused. */
const links = new Map<string, { reply: Replies['attachment_link']; until: number }>();

/** Short-lived download links of an attachment (`attachment_link`), reused while valid. */
export async function attachmentLink(
  client: ChathubClient,
  conversation: string | undefined,
  attachment: string,
): Promise<Replies['attachment_link']> {
  const hit = links.get(attachment);
  if (hit && hit.until > Date.now()) return hit.reply;
  const reply = await client.request('attachment_link', { conversation, attachment });
  links.set(attachment, { reply, until: reply.expires_at - 30_000 });
  if (links.size > 1_000) links.delete(links.keys().next().value as string);
  return reply;
}

/** Forgets an attachment's cached links (its standing changed: `attachment_checked`). */
export function forgetAttachmentLink(attachment: string): void {
  links.delete(attachment);
}
