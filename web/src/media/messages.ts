/**
 * The messages between the page (`VeilMedia`) and its media worker, and nothing else
 * crosses that boundary: session keys go in (structured clones, never logged), counters
 * come out. Epochs and sender numbers travel as bigints (structured-cloneable).
 */

import type { CipherSuite } from "../crypto/sframe.js";
import type { MediaCounters } from "./counters.js";
import type { Kind } from "./layout.js";

/** Given to `RTCRtpScriptTransform` (or sent with legacy streams) for one sender or receiver. */
export interface TransformOptions {
  id: number;
  side: "send" | "receive";
  kind: Kind;
  /** The stream number of a sending track (0-15, unique per participant). */
  stream?: number;
  /** The sender number a receiving track belongs to, when known. */
  sender?: bigint;
}

export type ToWorker =
  | { type: "init"; meetingId: string; sender: bigint; grace: number; suite: CipherSuite }
  | { type: "key"; epoch: bigint; key: Uint8Array }
  | { type: "forget" }
  | { type: "bind"; id: number; sender: bigint | undefined }
  | { type: "streams"; readable: ReadableStream; writable: WritableStream; options: TransformOptions }
  | { type: "counters"; request: number };

export interface MediaReport {
  counters: MediaCounters;
  /** The current epoch, if any key is held. */
  epoch: bigint | undefined;
  /** Per epoch (decimal), when (ms since the epoch of `Date`) its first frame opened here. */
  firstOpened: Record<string, number>;
}

export type FromWorker =
  | { type: "counters"; request: number; report: MediaReport }
  | { type: "error"; message: string };
