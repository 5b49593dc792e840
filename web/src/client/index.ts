/** The browser SDK's client, as `veil.client`: devices, groups, documents, meetings. */

export * from "./errors.js";
export { Backoff, RECONNECT, RETRY } from "./retry.js";
export { Device, escrowDocumentId, userIdOf, type InitializeOptions, type ApprovalDisplay } from "./device.js";
export type { PasswordSource, TokenSource } from "./escrow.js";
export { DeviceContext, MemoryDeviceStore, type DeviceStore, type Mode } from "./store.js";
export { IndexedDbDeviceStore } from "./indexeddb.js";
export { KeyServerClient, DeviceSession, DeviceRecord, UserKeys, type KeyDelivery } from "./keyserver.js";
export { ConferenceClient } from "./conference.js";
export { Groups, type GroupInfo, type GroupDigest } from "./groups.js";
export { Documents, EncryptedDocument, EncryptedStream, type Chunks, type EncryptOptions, type Kind, type Recipients } from "./documents.js";
export { KeyPins } from "./pins.js";
export { approvalPayload, parseApproval } from "./approval.js";
export { userIdFor } from "./ids.js";
export { Board, Post, type KeyLookup } from "./board.js";
export type { WebSocketConstructor, WebSocketLike } from "./socket.js";
export type { StateCallback } from "./link.js";
export { Invitation } from "./invitation.js";
export * from "./meeting/index.js";
