/**
 * What the media worker needs of an encoded WebRTC frame (`RTCEncodedVideoFrame`,
 * `RTCEncodedAudioFrame`): its bytes, settable, and its codec. Typed here, not taken
 * from lib.dom, so that the same code runs on plain objects in Node's tests.
 */

import { type Kind, codecOf } from "./layout.js";

export interface EncodedFrame {
  data: ArrayBuffer;
  getMetadata(): { mimeType?: string };
}

export function frameCodec(frame: EncodedFrame, kind: Kind): string {
  return codecOf(frame.getMetadata().mimeType, kind);
}

/** Replace a frame's bytes (a fresh buffer of exactly their length). */
export function setFrameData(frame: EncodedFrame, data: Uint8Array): void {
  frame.data = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength
    ? (data.buffer as ArrayBuffer)
    : data.slice().buffer;
}
