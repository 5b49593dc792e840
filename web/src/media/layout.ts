/**
 * Per-codec frame layouts: how many leading bytes of an encoded frame stay in the clear
 * for the RTP packetizer, the depacketizer and the SFU, the rest being one SFrame
 * ciphertext. The clear bytes are never unauthenticated: they are part of the SFrame
 * metadata (the AAD, RFC 9605 §4.4.3), so a changed clear byte fails the frame.
 *
 *     on the wire   clear (n bytes) ‖ SFrame header ‖ AES-GCM(payload[n:]) ‖ tag
 *     metadata      meeting id (UTF-8) ‖ clear
 *
 * `n` is read from the frame's own first byte where the codec puts its frame type there,
 * so sender and receiver agree without trusting any browser-supplied field:
 *
 * - VP8 (RFC 6386 §9.1, RFC 7741 §4.3): bit 0 of byte 0 is 0 on a key frame. A key
 *   frame keeps its 3-byte frame tag and the 7 bytes after it (start code, width,
 *   height) that the depacketizer reads: 10 bytes. A delta frame keeps 1 byte (the
 *   depacketizer reads only the key-frame bit). These are the offsets of the
 *   insertable-streams samples, Jitsi and LiveKit.
 * - Opus, and every other audio codec: 0 bytes, the whole frame is encrypted (the RTP
 *   packetizer treats audio frames as opaque).
 * - VP9, and any other video codec: 0 bytes. Never plaintext. Chromium's VP9
 *   packetizer takes its descriptor from the encoder, so whole VP9 frames go through
 *   (tested); its AV1 and H.264 packetizers parse the bitstream and cannot carry an
 *   encrypted frame, so negotiate VP8 or VP9 (`VeilMedia.preferCodecs`).
 */

export const VP8_KEY_FRAME_CLEAR = 10;
export const VP8_DELTA_FRAME_CLEAR = 1;

export type Kind = "audio" | "video";

/** The codec a frame's metadata names (`video/VP8`, `audio/opus`), lowercased. */
export function codecOf(mimeType: string | undefined, kind: Kind): string {
  if (mimeType) return mimeType.toLowerCase();
  // Without a MIME type (older browsers' legacy streams), video is taken as VP8, the
  // codec `preferCodecs` negotiates; audio has no clear bytes either way.
  return kind === "video" ? "video/vp8" : "audio/opus";
}

/** How many leading bytes of `data`, a frame of `codec`, stay in the clear. */
export function clearBytes(codec: string, data: Uint8Array): number {
  if (codec !== "video/vp8") return 0;
  const first = data[0];
  if (first === undefined) return 0;
  const n = (first & 1) === 0 ? VP8_KEY_FRAME_CLEAR : VP8_DELTA_FRAME_CLEAR;
  return Math.min(n, data.length);
}
