/** End-to-end encrypted WebRTC media: SFrame per frame under Veil's per-sender keys. */

export { VeilMedia, DEFAULT_GRACE, mediaApi, type MediaApi, type VeilMediaOptions } from "./veil-media.js";
export { follow, type MediaKeySource } from "./source.js";
export type { MediaCounters, DropReason } from "./counters.js";
export type { MediaReport } from "./messages.js";
export { VP8_KEY_FRAME_CLEAR, VP8_DELTA_FRAME_CLEAR, clearBytes, codecOf } from "./layout.js";
export { PENDING_LIMIT } from "./receive.js";
