/**
 * `VeilMedia`: end-to-end encryption of a participant's WebRTC audio and video, on the
 * peer connections the platform already has (its own SFU, its own signalling). The page
 * creates one per meeting participation, attaches every `RTCRtpSender` and
 * `RTCRtpReceiver`, and feeds it the meeting's session keys; a dedicated module worker
 * (`worker.ts`) seals and opens each frame as RFC 9605 SFrame under Veil's per-sender
 * keys (`cipher.ts`), through WebRTC Encoded Transform (`RTCRtpScriptTransform`), or the
 * legacy `createEncodedStreams` where a browser lacks it.
 *
 *     const media = new VeilMedia({ meetingId, sender: meeting.sender });
 *     media.setEpochKey(epoch, sessionKey);          // each epoch, from the Meeting
 *     for (const s of pc.getSenders()) media.attachSender(s);
 *     pc.ontrack = (e) => media.attachReceiver(e.receiver, { sender: senderOf(e) });
 *
 * Session keys live in this object's worker only: they cross by `postMessage` and are
 * never logged; `toJSON` shows none.
 */

import { type CipherSuite, DEFAULT_SUITE } from "../crypto/sframe.js";
import { STREAM_LIMIT, mediaKid } from "../crypto/schedule.js";
import type { MediaCounters } from "./counters.js";
import type { Kind } from "./layout.js";
import type { FromWorker, MediaReport, ToWorker, TransformOptions } from "./messages.js";

/** `veil.client.meeting.MeetingTimers.epoch_grace`, in ms. */
export const DEFAULT_GRACE = 5000;

export type MediaApi = "script-transform" | "encoded-streams";

export interface VeilMediaOptions {
  meetingId: string;
  /** This participant's sender number (the Meeting's, announced signed on the board). */
  sender: bigint;
  /** How long (ms) receivers keep a superseded epoch's keys, and frames wait for a new one. */
  grace?: number;
  suite?: CipherSuite;
  /** The worker module (`dist/src/media/worker.js`), if a bundler moved it. */
  workerUrl?: string | URL;
  /** Which API attaches to frames; by default Encoded Transform where the browser has it. */
  api?: MediaApi;
  /** Told when the worker dropped a frame for an unexpected error (a bug, not an attack:
   * attacks are counted). The message names no key. */
  onError?: (message: string) => void;
}

interface LegacyEndpoint {
  createEncodedStreams(): { readable: ReadableStream; writable: WritableStream };
}

declare const RTCRtpScriptTransform: {
  new (worker: Worker, options?: unknown, transfer?: Transferable[]): unknown;
} | undefined;

/** Which API this browser offers, Encoded Transform first. */
export function mediaApi(): MediaApi | undefined {
  if (typeof RTCRtpScriptTransform === "function") return "script-transform";
  const legacy = (globalThis as { RTCRtpSender?: { prototype: object } }).RTCRtpSender?.prototype;
  if (legacy && "createEncodedStreams" in legacy) return "encoded-streams";
  return undefined;
}

export class VeilMedia {
  readonly meetingId: string;
  readonly sender: bigint;
  readonly api: MediaApi;
  readonly #worker: Worker;
  readonly #receivers = new Map<RTCRtpReceiver, number>();
  readonly #requests = new Map<number, { resolve: (report: MediaReport) => void; reject: (error: Error) => void }>();
  #nextId = 0;
  #closed = false;
  #nextStream = 0;
  #streams = new Set<number>();

  constructor(options: VeilMediaOptions) {
    mediaKid(0n, options.sender); // a sender number out of range fails here, not in the worker
    const api = options.api ?? mediaApi();
    if (api === undefined) throw new Error("this browser has neither WebRTC Encoded Transform nor encoded streams");
    this.meetingId = options.meetingId;
    this.sender = options.sender;
    this.api = api;
    this.#worker = new Worker(options.workerUrl ?? new URL("./worker.js", import.meta.url), { type: "module" });
    this.#worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type === "counters") {
        this.#requests.get(message.request)?.resolve(message.report);
        this.#requests.delete(message.request);
      } else if (message.type === "error") {
        options.onError?.(message.message);
      }
    };
    this.#post({
      type: "init",
      meetingId: options.meetingId,
      sender: options.sender,
      grace: options.grace ?? DEFAULT_GRACE,
      suite: options.suite ?? DEFAULT_SUITE,
    });
  }

  /** Hold `epoch`'s session key (32 bytes): this participant's frames switch to it at
   * once; the epoch it supersedes opens frames for the grace period. */
  setEpochKey(epoch: bigint, sessionKey: Uint8Array): void {
    if (sessionKey.length !== 32) throw new RangeError("a session key is 32 bytes");
    this.#post({ type: "key", epoch, key: sessionKey }); // a structured clone: the worker zeroes it
  }

  /** Drop every key: nothing is sent or opened any more (the participant left). */
  forget(): void {
    this.#post({ type: "forget" });
  }

  /** Encrypt everything `sender` sends. `stream`: 0-15, one per track of this participant
   * (by default the next unused one); the same track sent on several peer connections (a
   * mesh) keeps its stream number, its frames then share one SFrame counter. Legacy
   * encoded streams need the peer connection made with `{ encodedInsertableStreams: true }`. */
  attachSender(sender: RTCRtpSender, options: { stream?: number; kind?: Kind } = {}): number {
    const kind = options.kind ?? (sender.track?.kind as Kind | undefined);
    if (kind !== "audio" && kind !== "video") throw new TypeError("attachSender: the sender has no track; pass kind");
    const stream = options.stream ?? this.#freeStream();
    if (!Number.isInteger(stream) || stream < 0 || stream >= STREAM_LIMIT) throw new RangeError("a stream number lies in [0, 16)");
    this.#streams.add(stream);
    this.#attach(sender, { id: this.#nextId++, side: "send", kind, stream });
    return stream;
  }

  /** Decrypt everything `receiver` gets. `sender`: the sender number of the participant
   * whose track this is (from the Meeting's roster); frames under any other sender's KID
   * are then dropped as `wrong_sender`. Without it any other participant's frames open. */
  attachReceiver(receiver: RTCRtpReceiver, options: { sender?: bigint } = {}): void {
    const kind = receiver.track.kind as Kind;
    const id = this.#nextId++;
    this.#receivers.set(receiver, id);
    const transform: TransformOptions = { id, side: "receive", kind };
    if (options.sender !== undefined) transform.sender = options.sender;
    this.#attach(receiver, transform);
  }

  /** The SFU moved another participant's track onto `receiver`: expect its sender number. */
  bindReceiver(receiver: RTCRtpReceiver, sender: bigint | undefined): void {
    const id = this.#receivers.get(receiver);
    if (id === undefined) throw new RangeError("bindReceiver: the receiver is not attached");
    this.#post({ type: "bind", id, sender });
  }

  /** What the worker counted so far, the current epoch and when each epoch first opened. */
  report(): Promise<MediaReport> {
    if (this.#closed) return Promise.reject(new Error("VeilMedia is closed"));
    const request = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#requests.set(request, { resolve, reject });
      this.#post({ type: "counters", request });
    });
  }

  async counters(): Promise<MediaCounters> {
    return (await this.report()).counters;
  }

  /** Forget the keys and stop the worker; attached senders and receivers stop passing
   * frames. The object is unusable afterwards. */
  close(): void {
    if (this.#closed) return;
    this.forget();
    this.#closed = true;
    this.#worker.terminate();
    for (const { reject } of this.#requests.values()) reject(new Error("VeilMedia is closed"));
    this.#requests.clear();
  }

  /** Put VP8 and Opus first in `transceiver`'s codec preferences (the tested layouts). */
  static preferCodecs(transceiver: RTCRtpTransceiver): void {
    const kind = transceiver.receiver.track.kind;
    const codecs = RTCRtpReceiver.getCapabilities(kind)?.codecs ?? [];
    const wanted = kind === "video" ? "video/vp8" : "audio/opus";
    const first = codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
    transceiver.setCodecPreferences([...first, ...codecs.filter((c) => !first.includes(c))]);
  }

  toJSON(): string {
    return `VeilMedia(meeting=${this.meetingId}, sender=${this.sender}, api=${this.api})`;
  }

  #freeStream(): number {
    while (this.#streams.has(this.#nextStream)) this.#nextStream++;
    return this.#nextStream;
  }

  #attach(endpoint: RTCRtpSender | RTCRtpReceiver, options: TransformOptions): void {
    if (this.api === "script-transform" && RTCRtpScriptTransform !== undefined) {
      (endpoint as { transform: unknown }).transform = new RTCRtpScriptTransform(this.#worker, options);
      return;
    }
    const { readable, writable } = (endpoint as unknown as LegacyEndpoint).createEncodedStreams();
    this.#worker.postMessage({ type: "streams", readable, writable, options } satisfies ToWorker, [
      readable as unknown as Transferable,
      writable as unknown as Transferable,
    ]);
  }

  #post(message: ToWorker): void {
    if (this.#closed) throw new Error("VeilMedia is closed");
    this.#worker.postMessage(message);
  }
}
