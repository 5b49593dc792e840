/**
 * Document envelopes, as `veil.crypto.aead`: AES-256-GCM under a fresh key per object.
 *
 *     single-shot  01 10 | id_len:2 | document_id | nonce:12 | ciphertext+tag
 *     streaming    01 11 | id_len:2 | document_id | chunk_size:4 | nonce_prefix:7 | segment…
 *
 * Streaming is STREAM (Hoang, Reyhanitabar, Rogaway, Vizár, CRYPTO 2015): segment `i`
 * under `nonce_prefix ‖ i:4 ‖ last:1`, so a moved, cut or extended stream fails. The
 * header (and so the document id) is the AAD of every segment.
 */

import { Kind, Reader, bytesEqual, concat, header, owned } from "./encoding.js";
import { DecryptionError, InvalidLength, NonCanonicalEncoding } from "./errors.js";

export const KEY_SIZE = 32;
const NONCE_SIZE = 12;
const TAG_SIZE = 16;
export const DEFAULT_CHUNK_SIZE = 64 * 1024;
export const MIN_CHUNK_SIZE = 1024;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
const PREFIX_SIZE = 7;
const MAX_SEGMENTS = 2 ** 32;
const encoder = new TextEncoder();

export function generateKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(KEY_SIZE));
}

async function aesKey(key: Uint8Array): Promise<CryptoKey> {
  if (key.length !== KEY_SIZE) throw new RangeError(`a document key is ${KEY_SIZE} bytes`);
  return crypto.subtle.importKey("raw", owned(key), "AES-GCM", false, ["encrypt", "decrypt"]);
}

function idField(documentId: string): Uint8Array {
  const raw = encoder.encode(documentId);
  if (raw.length === 0 || raw.length > 0xffff) throw new RangeError("a document id is 1 to 65535 bytes of UTF-8");
  return concat([Uint8Array.of(raw.length >> 8, raw.length & 0xff), raw]);
}

async function encrypt(key: CryptoKey, nonce: Uint8Array, data: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: owned(nonce), additionalData: owned(aad) }, key, owned(data)),
  );
}

async function decrypt(key: CryptoKey, nonce: Uint8Array, data: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt({ name: "AES-GCM", iv: owned(nonce), additionalData: owned(aad) }, key, owned(data)),
    );
  } catch {
    throw new DecryptionError();
  }
}

export async function sealDocument(key: Uint8Array, documentId: string, plaintext: Uint8Array): Promise<Uint8Array> {
  return sealDocumentUnder(await aesKey(key), documentId, plaintext);
}

/** `sealDocument` under a WebCrypto AES-256-GCM key (one that may be non-extractable). */
export async function sealDocumentUnder(aes: CryptoKey, documentId: string, plaintext: Uint8Array): Promise<Uint8Array> {
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_SIZE));
  const head = concat([header(Kind.DOCUMENT), idField(documentId), nonce]);
  return concat([head, await encrypt(aes, nonce, plaintext, head)]);
}

export async function openDocument(key: Uint8Array, documentId: string, envelope: Uint8Array): Promise<Uint8Array> {
  return openDocumentUnder(await aesKey(key), documentId, envelope);
}

/** `openDocument` under a WebCrypto AES-256-GCM key (one that may be non-extractable). */
export async function openDocumentUnder(aes: CryptoKey, documentId: string, envelope: Uint8Array): Promise<Uint8Array> {
  const reader = new Reader(envelope, "document envelope");
  reader.expectHeader(Kind.DOCUMENT);
  const length = reader.take(2);
  const foundId = reader.take(((length[0] ?? 0) << 8) | (length[1] ?? 0));
  const nonce = reader.take(NONCE_SIZE);
  const consumed = 2 + 2 + foundId.length + NONCE_SIZE;
  if (envelope.length - consumed < TAG_SIZE) throw new InvalidLength("document envelope: shorter than its tag");
  const head = envelope.subarray(0, consumed);
  const expected = concat([header(Kind.DOCUMENT), idField(documentId), nonce]);
  if (!bytesEqual(head, expected)) throw new DecryptionError();
  return decrypt(aes, nonce, envelope.subarray(consumed), head);
}

function segmentNonce(prefix: Uint8Array, index: number, last: boolean): Uint8Array {
  if (index >= MAX_SEGMENTS) throw new RangeError("stream exceeds 2^32 segments");
  const counter = new Uint8Array(5);
  new DataView(counter.buffer).setUint32(0, index);
  counter[4] = last ? 1 : 0;
  return concat([prefix, counter]);
}

type Chunks = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** The stream header, then one sealed segment per `chunkSize` bytes of input. */
export async function* sealStream(
  key: Uint8Array,
  documentId: string,
  chunks: Chunks,
  chunkSize: number = DEFAULT_CHUNK_SIZE,
): AsyncGenerator<Uint8Array> {
  if (!(chunkSize >= MIN_CHUNK_SIZE && chunkSize <= MAX_CHUNK_SIZE)) {
    throw new RangeError(`chunk_size must lie in [${MIN_CHUNK_SIZE}, ${MAX_CHUNK_SIZE}]`);
  }
  const aes = await aesKey(key);
  const prefix = crypto.getRandomValues(new Uint8Array(PREFIX_SIZE));
  const size = new Uint8Array(4);
  new DataView(size.buffer).setUint32(0, chunkSize);
  const head = concat([header(Kind.DOCUMENT_STREAM), idField(documentId), size, prefix]);
  yield head;
  let buffer: Uint8Array = new Uint8Array();
  let index = 0;
  for await (const chunk of chunks) {
    buffer = concat([buffer, chunk]);
    // Keep back at least one byte past a full chunk: only the final segment is "last".
    while (buffer.length > chunkSize) {
      yield encrypt(aes, segmentNonce(prefix, index, false), buffer.subarray(0, chunkSize), head);
      buffer = buffer.subarray(chunkSize);
      index += 1;
    }
  }
  yield encrypt(aes, segmentNonce(prefix, index, true), buffer, head);
}

/** The plaintext chunks of a stream; a truncated stream fails only at its end. */
export async function* openStream(key: Uint8Array, documentId: string, data: Chunks): AsyncGenerator<Uint8Array> {
  const aes = await aesKey(key);
  const expectedId = idField(documentId);
  const fixed = 2 + expectedId.length + 4 + PREFIX_SIZE;
  let buffer: Uint8Array = new Uint8Array();
  let head: Uint8Array | undefined;
  let prefix = new Uint8Array();
  let segment = 0;
  let index = 0;
  for await (const piece of data) {
    buffer = concat([buffer, piece]);
    if (head === undefined) {
      if (buffer.length < fixed) continue;
      head = Uint8Array.from(buffer.subarray(0, fixed));
      const reader = new Reader(head, "document stream header");
      reader.expectHeader(Kind.DOCUMENT_STREAM);
      if (!bytesEqual(reader.take(expectedId.length), expectedId)) throw new DecryptionError();
      const size = new DataView(reader.take(4).slice().buffer).getUint32(0);
      if (size < MIN_CHUNK_SIZE || size > MAX_CHUNK_SIZE) {
        throw new NonCanonicalEncoding(`document stream: chunk size ${size} out of range`);
      }
      prefix = Uint8Array.from(reader.take(PREFIX_SIZE));
      segment = size + TAG_SIZE;
      buffer = buffer.subarray(fixed);
    }
    while (buffer.length > segment) {
      yield decrypt(aes, segmentNonce(prefix, index, false), buffer.subarray(0, segment), head);
      buffer = buffer.subarray(segment);
      index += 1;
    }
  }
  if (head === undefined) throw new InvalidLength("document stream: shorter than its header");
  if (buffer.length < TAG_SIZE) throw new DecryptionError();
  yield decrypt(aes, segmentNonce(prefix, index, true), buffer, head);
}
