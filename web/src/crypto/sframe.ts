/**
 * SFrame (RFC 9605), as `veil.crypto.sframe`: the §4.3 header, the §4.4.2 key
 * schedule, §4.4.3/§4.4.4 protect and unprotect with every §4.5 cipher suite, and a
 * sliding replay window per key (RFC 4303 §3.4.3's; §7.3 leaves replay to the
 * application). All five suites run on WebCrypto: AES-GCM for 4 and 5, AES-CTR with
 * HMAC-SHA256 for 1-3 (§4.5.1). Veil uses suite 5 unless told otherwise.
 */

import { concat, owned } from "./encoding.js";
import { DecryptionError, InvalidLength, VeilCryptoError } from "./errors.js";

export class ReplayedFrame extends VeilCryptoError {
  override name = "ReplayedFrame";
  constructor() {
    super("the frame was seen before, or is older than the replay window");
  }
}

export class UnknownKeyId extends VeilCryptoError {
  override name = "UnknownKeyId";
}

export const CipherSuite = {
  AES_128_CTR_HMAC_SHA256_80: 1,
  AES_128_CTR_HMAC_SHA256_64: 2,
  AES_128_CTR_HMAC_SHA256_32: 3,
  AES_128_GCM_SHA256_128: 4,
  AES_256_GCM_SHA512_128: 5,
} as const;
export type CipherSuite = (typeof CipherSuite)[keyof typeof CipherSuite];
export const DEFAULT_SUITE: CipherSuite = CipherSuite.AES_256_GCM_SHA512_128;

interface Params {
  hash: "SHA-256" | "SHA-512";
  nka: number; // AES key size inside a CTR+HMAC key; 0 for GCM
  nk: number;
  nt: number;
  nn: number;
}

const PARAMS: Record<CipherSuite, Params> = {
  1: { hash: "SHA-256", nka: 16, nk: 48, nt: 10, nn: 12 },
  2: { hash: "SHA-256", nka: 16, nk: 48, nt: 8, nn: 12 },
  3: { hash: "SHA-256", nka: 16, nk: 48, nt: 4, nn: 12 },
  4: { hash: "SHA-256", nka: 0, nk: 16, nt: 16, nn: 12 },
  5: { hash: "SHA-512", nka: 0, nk: 32, nt: 16, nn: 12 },
};

const MAX_VALUE = 2n ** 64n - 1n;
const MAX_HALF = 0xffffffff;
export const DEFAULT_REPLAY_WINDOW = 128;
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

// Per frame, 64-bit counters (and KIDs when written) are two 32-bit Numbers, `high`
// and `low`: a BigInt operation allocates, and a media frame's share of them cost it
// about as much as its AES-GCM call. BigInts stay at the API's edges, exact to 2^64.

function checkValue(value: bigint, what: string): void {
  if (value < 0n || value > MAX_VALUE) throw new RangeError(`SFrame ${what} must lie in [0, 2^64)`);
}

function highOf(value: bigint): number {
  return Number(value >> 32n);
}

function lowOf(value: bigint): number {
  return Number(value & 0xffffffffn);
}

function joined(high: number, low: number): bigint {
  return high === 0 ? BigInt(low) : (BigInt(high) << 32n) | BigInt(low);
}

function bytesOf(value: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/** Bytes (1-4) a 32-bit value needs. */
function size32(x: number): number {
  return x < 0x100 ? 1 : x < 0x10000 ? 2 : x < 0x1000000 ? 3 : 4;
}

/** How many bytes a §4.3 field takes after the config byte (0: it fits in 3 bits). */
function fieldSize(high: number, low: number): number {
  if (high !== 0) return 4 + size32(high);
  return low < 8 ? 0 : size32(low);
}

/** The `size` low bytes of `high:low`, big-endian, at `at`. */
function writeField(out: Uint8Array, at: number, high: number, low: number, size: number): void {
  let i = at + size - 1;
  for (let k = 0; k < size && k < 4; k++, low >>>= 8) out[i--] = low & 0xff;
  for (let k = 4; k < size; k++, high >>>= 8) out[i--] = high & 0xff;
}

/** §4.3: `|X| K |Y| C |`, then the extended KID and counter bytes, if any; its size. */
function writeFields(out: Uint8Array, at: number, kidHigh: number, kidLow: number, ctrHigh: number, ctrLow: number): number {
  const kidSize = fieldSize(kidHigh, kidLow);
  const ctrSize = fieldSize(ctrHigh, ctrLow);
  writeField(out, at + 1, kidHigh, kidLow, kidSize);
  writeField(out, at + 1 + kidSize, ctrHigh, ctrLow, ctrSize);
  const kidBits = kidSize ? 0b1000 | (kidSize - 1) : kidLow;
  const ctrBits = ctrSize ? 0b1000 | (ctrSize - 1) : ctrLow;
  out[at] = (kidBits << 4) | ctrBits;
  return 1 + kidSize + ctrSize;
}

/** §4.3's header size for `kid` and `ctr`. */
export function headerSize(kid: bigint, ctr: bigint): number {
  checkValue(kid, "KID");
  checkValue(ctr, "counter");
  return 1 + fieldSize(highOf(kid), lowOf(kid)) + fieldSize(highOf(ctr), lowOf(ctr));
}

/** §4.3's header for `kid` and `ctr`, written into `out` at `at`; returns its size. */
export function writeHeader(out: Uint8Array, at: number, kid: bigint, ctr: bigint): number {
  checkValue(kid, "KID");
  checkValue(ctr, "counter");
  return writeFields(out, at, highOf(kid), lowOf(kid), highOf(ctr), lowOf(ctr));
}

export function encodeHeader(kid: bigint, ctr: bigint): Uint8Array {
  const out = new Uint8Array(headerSize(kid, ctr));
  writeHeader(out, 0, kid, ctr);
  return out;
}

/** A parsed §4.3 header, its counter as two 32-bit halves (`readHeader`). */
export interface Header {
  readonly kid: bigint;
  readonly ctrHigh: number;
  readonly ctrLow: number;
  /** Bytes the header takes at the front of the frame. */
  readonly size: number;
}

/** The header at the front of `data`, as `SFrameReceiver.unprotect` takes it: a caller
 * that reads the KID first (to route the frame) parses the header once. */
export function readHeader(data: Uint8Array): Header {
  const config = data[0];
  if (config === undefined) throw new InvalidLength("SFrame header: empty input");
  const kidNibble = config >> 4;
  const ctrNibble = config & 0x0f;
  const kidSize = kidNibble > 7 ? kidNibble - 7 : 0;
  const ctrSize = ctrNibble > 7 ? ctrNibble - 7 : 0;
  const size = 1 + kidSize + ctrSize;
  if (data.length < size) throw new InvalidLength("SFrame header: truncated");
  let high = 0;
  let low = kidNibble;
  if (kidSize) {
    low = 0;
    const split = Math.max(1, 1 + kidSize - 4);
    for (let i = 1; i < split; i++) high = high * 256 + (data[i] as number);
    for (let i = split; i < 1 + kidSize; i++) low = low * 256 + (data[i] as number);
  }
  const kid = joined(high, low);
  let ctrHigh = 0;
  let ctrLow = ctrNibble;
  if (ctrSize) {
    ctrLow = 0;
    const from = 1 + kidSize;
    const split = Math.max(from, size - 4);
    for (let i = from; i < split; i++) ctrHigh = ctrHigh * 256 + (data[i] as number);
    for (let i = split; i < size; i++) ctrLow = ctrLow * 256 + (data[i] as number);
  }
  return { kid, ctrHigh, ctrLow, size };
}

/** `{kid, ctr, size}` of the header at the front of `data`. */
export function parseHeader(data: Uint8Array): { kid: bigint; ctr: bigint; size: number } {
  const { kid, ctrHigh, ctrLow, size } = readHeader(data);
  return { kid, ctr: joined(ctrHigh, ctrLow), size };
}

async function hkdfExpand(hash: string, secret: Uint8Array, info: Uint8Array, length: number): Promise<Uint8Array> {
  // HKDF with an empty salt is RFC 5869's default (HashLen zeros, the same HMAC key).
  const key = await crypto.subtle.importKey("raw", owned(secret), "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "HKDF", hash, salt: new Uint8Array(), info: owned(info) }, key, length * 8);
  return new Uint8Array(bits);
}

/** §4.4.2: `{key, salt}` for one KID. */
export async function deriveKeySalt(
  suite: CipherSuite,
  kid: bigint,
  baseKey: Uint8Array,
): Promise<{ key: Uint8Array; salt: Uint8Array }> {
  checkValue(kid, "KID");
  const params = PARAMS[suite];
  if (params === undefined) throw new RangeError(`unknown SFrame cipher suite ${suite}`);
  const context = concat([bytesOf(kid, 8), bytesOf(BigInt(suite), 2)]);
  const key = await hkdfExpand(params.hash, baseKey, concat([encoder.encode("SFrame 1.0 Secret key "), context]), params.nk);
  const salt = await hkdfExpand(params.hash, baseKey, concat([encoder.encode("SFrame 1.0 Secret salt "), context]), params.nn);
  return { key, salt };
}

interface Aead {
  /** The inputs are copied when the call is made (one WebCrypto call), so the caller
   * may reuse its nonce and AAD buffers at once; not so for CTR + HMAC (two calls). */
  readonly copiesAtCall: boolean;
  /** Bytes a ciphertext is longer than its plaintext. */
  readonly tagSize: number;
  /** A new buffer. For GCM, WebCrypto's own promise (its inputs read before it returns):
   * a frame awaits one promise, not a chain of async calls. `decrypt` rejects with
   * whatever WebCrypto rejects with; `unprotectAfter` makes that a DecryptionError. */
  encrypt(nonce: Uint8Array, data: Uint8Array, aad: Uint8Array): Promise<ArrayBuffer>;
  decrypt(nonce: Uint8Array, data: Uint8Array, aad: Uint8Array): Promise<ArrayBuffer>;
}

/** `bytes` as WebCrypto takes them, without a copy where they are not shared memory:
 * WebCrypto copies its input when called, and a frame's copy costs as much as its AES. */
function view(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : owned(bytes);
}

async function gcm(key: Uint8Array): Promise<Aead> {
  const aes = await crypto.subtle.importKey("raw", owned(key), "AES-GCM", false, ["encrypt", "decrypt"]);
  // One parameters object per key, its members set per call: WebCrypto reads and copies
  // them before it returns.
  const params: AesGcmParams = { name: "AES-GCM", iv: new Uint8Array(12), additionalData: new Uint8Array() };
  return {
    copiesAtCall: true,
    tagSize: 16,
    encrypt(nonce, data, aad) {
      params.iv = view(nonce);
      params.additionalData = view(aad);
      return crypto.subtle.encrypt(params, aes, view(data));
    },
    decrypt(nonce, data, aad) {
      params.iv = view(nonce);
      params.additionalData = view(aad);
      return crypto.subtle.decrypt(params, aes, view(data));
    },
  };
}

/** §4.5.1: AES-CTR, then HMAC-SHA256 over lengths, nonce, AAD and ciphertext, truncated. */
async function ctrHmac(key: Uint8Array, params: Params): Promise<Aead> {
  const aes = await crypto.subtle.importKey("raw", owned(key.subarray(0, params.nka)), "AES-CTR", false, ["encrypt"]);
  const mac = await crypto.subtle.importKey(
    "raw",
    owned(key.subarray(params.nka)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const ctr = async (nonce: Uint8Array, data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> => {
    const counter = concat([nonce, new Uint8Array(4)]);
    return new Uint8Array(await crypto.subtle.encrypt({ name: "AES-CTR", counter: owned(counter), length: 32 }, aes, owned(data)));
  };
  const tag = async (nonce: Uint8Array, aad: Uint8Array, ct: Uint8Array): Promise<Uint8Array> => {
    const lengths = concat([aad.length, ct.length, params.nt].map((n) => bytesOf(BigInt(n), 8)));
    const full = await crypto.subtle.sign("HMAC", mac, owned(concat([lengths, nonce, aad, ct])));
    return new Uint8Array(full).subarray(0, params.nt);
  };
  return {
    copiesAtCall: false,
    tagSize: params.nt,
    async encrypt(nonce, data, aad) {
      const ct = await ctr(nonce, data);
      return concat([ct, await tag(nonce, aad, ct)]).buffer;
    },
    async decrypt(nonce, data, aad) {
      if (data.length < params.nt) throw new DecryptionError();
      const ct = data.subarray(0, data.length - params.nt);
      const expected = await tag(nonce, aad, ct);
      const given = data.subarray(data.length - params.nt);
      let diff = 0;
      for (let i = 0; i < params.nt; i++) diff |= (expected[i] ?? 0) ^ (given[i] ?? 0);
      if (diff !== 0) throw new DecryptionError();
      return (await ctr(nonce, ct)).buffer;
    },
  };
}

class KeyState {
  // Per-frame scratch for nonce and AAD where the AEAD copies them at the call: small
  // buffers cost a media frame as much as its AES does.
  readonly #iv: Uint8Array<ArrayBuffer>;
  readonly #ivWord: DataView;
  #ad = new Uint8Array(new ArrayBuffer(64));

  private constructor(
    readonly aead: Aead,
    /** The salt's bytes; a counter (< 2^64) changes only the last 8 of the nonce. */
    private readonly salt: Uint8Array<ArrayBuffer>,
    private readonly saltHigh: number,
    private readonly saltLow: number,
    readonly fingerprint: string,
    readonly window: ReplayWindow,
  ) {
    this.#iv = salt.slice();
    this.#ivWord = new DataView(this.#iv.buffer);
  }

  static async make(suite: CipherSuite, kid: bigint, baseKey: Uint8Array, window: number): Promise<KeyState> {
    const { key, salt } = await deriveKeySalt(suite, kid, baseKey);
    const params = PARAMS[suite];
    const aead = params.nka === 0 ? await gcm(key) : await ctrHmac(key, params);
    // Compares keys without keeping a second copy of them in the clear.
    const mark = await crypto.subtle.digest("SHA-256", owned(concat([encoder.encode("veil sframe key fingerprint"), key])));
    const fingerprint = Array.from(new Uint8Array(mark), (b) => b.toString(16).padStart(2, "0")).join("");
    const last = new DataView(salt.buffer, salt.byteOffset + salt.length - 8, 8);
    return new KeyState(aead, owned(salt), last.getUint32(0), last.getUint32(4), fingerprint, new ReplayWindow(window));
  }

  /** §4.4.3: `salt XOR ctr`, the counter big-endian in the nonce's last 8 bytes. */
  nonce(ctrHigh: number, ctrLow: number): Uint8Array {
    const out = this.aead.copiesAtCall ? this.#iv : this.salt.slice();
    const word = this.aead.copiesAtCall ? this.#ivWord : new DataView(out.buffer);
    word.setUint32(out.length - 8, this.saltHigh ^ ctrHigh);
    word.setUint32(out.length - 4, this.saltLow ^ ctrLow);
    return out;
  }

  /** §4.4.3's AAD, `header ‖ metadata`, the header being `size` bytes of `from`. */
  aad(from: Uint8Array, size: number, metadata: Uint8Array): Uint8Array {
    const out = this.#scratch(size + metadata.length);
    for (let i = 0; i < size; i++) out[i] = from[i] as number;
    out.set(metadata, size);
    return out;
  }

  /** §4.4.3's AAD of a frame being sealed: its header, written here, ‖ metadata. */
  sealingAad(kidHigh: number, kidLow: number, ctrHigh: number, ctrLow: number, size: number, metadata: Uint8Array): Uint8Array {
    const out = this.#scratch(size + metadata.length);
    writeFields(out, 0, kidHigh, kidLow, ctrHigh, ctrLow);
    out.set(metadata, size);
    return out;
  }

  #scratch(total: number): Uint8Array {
    if (!this.aead.copiesAtCall) return new Uint8Array(total);
    if (this.#ad.length < total) this.#ad = new Uint8Array(new ArrayBuffer(total * 2));
    return this.#ad.length === total ? this.#ad : this.#ad.subarray(0, total);
  }
}

/** Accepts each counter once, and none `size` or more behind the highest seen.
 *
 * A ring of bits, one per counter modulo its length (a power of two >= `size`, so it
 * divides 2^32 and a counter's low half gives its slot): the bits of the counters from
 * `top - length + 1` to `top` say which were accepted; moving `top` up clears the slots
 * it passes. Counters are two 32-bit halves (`checkCounter`, `acceptCounter`): no BigInt
 * per frame, exact over the whole 2^64 range. */
export class ReplayWindow {
  #seen = false;
  #topHigh = 0;
  #topLow = 0;
  readonly #size: number;
  readonly #bits: Uint32Array;
  readonly #slots: number; // the ring's length - 1

  constructor(size: number = DEFAULT_REPLAY_WINDOW) {
    if (!Number.isInteger(size) || size < 1 || size > 2 ** 24) {
      throw new RangeError("a replay window holds from 1 to 2^24 counters");
    }
    this.#size = size;
    let length = 32;
    while (length < size) length *= 2;
    this.#bits = new Uint32Array(length / 32);
    this.#slots = length - 1;
  }

  /** The highest counter accepted, or -1. */
  get top(): bigint {
    return this.#seen ? joined(this.#topHigh, this.#topLow) : -1n;
  }

  check(ctr: bigint): void {
    checkValue(ctr, "counter");
    this.checkCounter(highOf(ctr), lowOf(ctr));
  }

  accept(ctr: bigint): void {
    checkValue(ctr, "counter");
    this.acceptCounter(highOf(ctr), lowOf(ctr));
  }

  /** `ctr - top` as a Number: exact below 2^53 in size, and a larger one's rounding
   * cannot bring it under any window's size. */
  #ahead(high: number, low: number): number {
    return (high - this.#topHigh) * 2 ** 32 + (low - this.#topLow);
  }

  #has(low: number): boolean {
    const slot = low & this.#slots;
    return ((this.#bits[slot >>> 5] as number) >>> (slot & 31)) & 1 ? true : false;
  }

  checkCounter(high: number, low: number): void {
    if (!this.#seen) return;
    const ahead = this.#ahead(high, low);
    if (ahead > 0) return;
    if (-ahead >= this.#size || this.#has(low)) throw new ReplayedFrame();
  }

  /** Record the counter as seen, after `checkCounter` passed and the frame authenticated
   * (`ReplayedFrame` if another accept took it meanwhile, or left it behind). */
  acceptCounter(high: number, low: number): void {
    this.checkCounter(high, low);
    const bits = this.#bits;
    const ahead = this.#seen ? this.#ahead(high, low) : Number.POSITIVE_INFINITY;
    if (ahead > 0) {
      if (ahead > this.#slots) bits.fill(0);
      else {
        for (let k = 1; k <= ahead; k++) {
          const slot = (this.#topLow + k) & this.#slots;
          bits[slot >>> 5] = (bits[slot >>> 5] as number) & ~(1 << (slot & 31));
        }
      }
      this.#seen = true;
      this.#topHigh = high;
      this.#topLow = low;
    }
    const slot = low & this.#slots;
    bits[slot >>> 5] = (bits[slot >>> 5] as number) | (1 << (slot & 31));
  }
}

/** Protects one sender's frames under one KID, counting from 0. The metadata is read
 * when `protect` is called (it goes into the AAD before the first `await`). */
export class SFrameSender {
  #ctrHigh = 0;
  #ctrLow = 0;
  #exhausted = false;
  readonly #kidHigh: number;
  readonly #kidLow: number;

  private constructor(
    readonly kid: bigint,
    private readonly state: KeyState,
  ) {
    this.#kidHigh = highOf(kid);
    this.#kidLow = lowOf(kid);
  }

  static async create(kid: bigint, baseKey: Uint8Array, suite: CipherSuite = DEFAULT_SUITE): Promise<SFrameSender> {
    checkValue(kid, "KID");
    return new SFrameSender(kid, await KeyState.make(suite, kid, baseKey, 1));
  }

  protect(payload: Uint8Array, metadata: Uint8Array = EMPTY): Promise<Uint8Array> {
    return this.protectAfter(EMPTY, payload, metadata);
  }

  /** `prefix ‖ protect(payload, metadata)` in one buffer, for callers that put bytes of
   * their own (a media frame's clear codec header) before the SFrame frame: a frame is
   * copied once, when WebCrypto's ciphertext is put behind the header. */
  async protectAfter(prefix: Uint8Array, payload: Uint8Array, metadata: Uint8Array = EMPTY): Promise<Uint8Array> {
    if (this.#exhausted) throw new RangeError("SFrame counter exhausted: derive a new key");
    const high = this.#ctrHigh;
    const low = this.#ctrLow;
    if (low !== MAX_HALF) this.#ctrLow = low + 1;
    else if (high !== MAX_HALF) {
      this.#ctrHigh = high + 1;
      this.#ctrLow = 0;
    } else this.#exhausted = true; // 2^64 - 1 is this frame's, the last
    const state = this.state;
    const at = prefix.length;
    const [kidHigh, kidLow] = [this.#kidHigh, this.#kidLow];
    const size = 1 + fieldSize(kidHigh, kidLow) + fieldSize(high, low);
    const aad = state.sealingAad(kidHigh, kidLow, high, low, size, metadata);
    const sealing = state.aead.encrypt(state.nonce(high, low), payload, aad);
    // The frame's buffer is made while WebCrypto encrypts on its own thread: in a browser
    // a new buffer costs by its size about what the AES does (1.3 µs at 1.2 kB in a
    // Chromium worker), and here that time is otherwise spent waiting.
    const out = new Uint8Array(at + size + payload.length + state.aead.tagSize);
    if (at) out.set(prefix);
    writeFields(out, at, kidHigh, kidLow, high, low);
    out.set(new Uint8Array(await sealing), at + size);
    return out;
  }

  /** Continue from `ctr` (for tests, which cannot send 2^64 frames). */
  seek(ctr: bigint): void {
    checkValue(ctr, "counter");
    this.#ctrHigh = highOf(ctr);
    this.#ctrLow = lowOf(ctr);
    this.#exhausted = false;
  }

  toJSON(): string {
    return `SFrameSender(kid=${this.kid})`;
  }
}

/** Unprotects frames for every KID it holds a key for, each with its replay window. The
 * metadata is read when `unprotect` is called. */
export class SFrameReceiver {
  readonly #keys = new Map<bigint, KeyState>();

  constructor(private readonly windowSize: number = DEFAULT_REPLAY_WINDOW) {
    new ReplayWindow(windowSize);
  }

  /** Hold a key for `kid`; a different key for a KID in use is refused. */
  async addKey(kid: bigint, baseKey: Uint8Array, suite: CipherSuite = DEFAULT_SUITE): Promise<void> {
    const state = await KeyState.make(suite, kid, baseKey, this.windowSize);
    const current = this.#keys.get(kid);
    if (current === undefined) this.#keys.set(kid, state);
    else if (current.fingerprint !== state.fingerprint) {
      throw new RangeError(`KID ${kid} already has a different key; remove it first`);
    }
  }

  removeKey(kid: bigint): void {
    this.#keys.delete(kid);
  }

  get kids(): bigint[] {
    return [...this.#keys.keys()];
  }

  /** The payload (in a buffer of its own); `UnknownKeyId`, `ReplayedFrame` or
   * `DecryptionError`. `header`: `readHeader(frame)`, for a caller that read it already. */
  async unprotect(frame: Uint8Array, metadata: Uint8Array = EMPTY, header?: Header): Promise<Uint8Array> {
    return this.unprotectAfter(EMPTY, frame, metadata, header ?? readHeader(frame));
  }

  /** `prefix ‖ unprotect(frame, metadata)` in one buffer, made while WebCrypto decrypts
   * (a media frame's clear codec header goes back in front of its payload). */
  async unprotectAfter(prefix: Uint8Array, frame: Uint8Array, metadata: Uint8Array = EMPTY, header: Header = readHeader(frame)): Promise<Uint8Array> {
    const { kid, ctrHigh, ctrLow, size } = header;
    const state = this.#keys.get(kid);
    if (state === undefined) throw new UnknownKeyId(`no SFrame key for KID ${kid}`);
    state.window.checkCounter(ctrHigh, ctrLow);
    const length = frame.length - size - state.aead.tagSize;
    if (length < 0) throw new DecryptionError();
    const aad = state.aad(frame, size, metadata);
    const opening = state.aead.decrypt(state.nonce(ctrHigh, ctrLow), frame.subarray(size), aad);
    const out = prefix.length === 0 ? undefined : new Uint8Array(prefix.length + length);
    out?.set(prefix);
    let payload: ArrayBuffer;
    try {
      payload = await opening;
    } catch {
      throw new DecryptionError();
    }
    state.window.acceptCounter(ctrHigh, ctrLow);
    if (out === undefined) return new Uint8Array(payload);
    out.set(new Uint8Array(payload), prefix.length);
    return out;
  }

  toJSON(): string {
    return `SFrameReceiver(kids=${this.kids.join(",")})`;
  }
}
