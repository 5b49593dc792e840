/** Veil's keys for LiveKit's client SDK (`@veil/web/livekit`; needs `livekit-client`). */
export { VeilKeyProvider, keyIndex, type VeilKeyProviderOptions } from "./key-provider.js";
