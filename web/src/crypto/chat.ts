/**
 * Meeting chat sealing, as `veil.crypto.chat`: `nonce:12 ‖ AES-256-GCM(chat key,
 * nonce, text, aad)` with `aad = "veil-chat-v1" ‖ meeting id ‖ 0x00 ‖ "<epoch>:<sender>"`.
 */

import { concat, owned } from "./encoding.js";
import { DecryptionError, InvalidLength } from "./errors.js";
import { chatKey } from "./schedule.js";

const NONCE_SIZE = 12;
const TAG_SIZE = 16;
const encoder = new TextEncoder();

function aad(meetingId: string, epoch: bigint, sender: bigint): Uint8Array {
  return concat([
    encoder.encode("veil-chat-v1"),
    encoder.encode(meetingId),
    Uint8Array.of(0),
    encoder.encode(`${epoch}:${sender}`),
  ]);
}

async function aesKey(session: Uint8Array, meetingId: string, epoch: bigint): Promise<CryptoKey> {
  const raw = await chatKey(session, meetingId, epoch);
  return crypto.subtle.importKey("raw", owned(raw), "AES-GCM", false, ["encrypt", "decrypt"]);
}

export async function seal(
  session: Uint8Array,
  text: Uint8Array,
  meetingId: string,
  epoch: bigint,
  sender: bigint,
): Promise<Uint8Array> {
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_SIZE));
  const key = await aesKey(session, meetingId, epoch);
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce, additionalData: owned(aad(meetingId, epoch, sender)) },
    key,
    owned(text),
  );
  return concat([nonce, new Uint8Array(sealed)]);
}

export async function openSealed(
  session: Uint8Array,
  sealed: Uint8Array,
  meetingId: string,
  epoch: bigint,
  sender: bigint,
): Promise<Uint8Array> {
  if (sealed.length < NONCE_SIZE + TAG_SIZE) throw new InvalidLength("a sealed chat message is at least 28 bytes");
  const key = await aesKey(session, meetingId, epoch);
  try {
    const text = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: owned(sealed.subarray(0, NONCE_SIZE)), additionalData: owned(aad(meetingId, epoch, sender)) },
      key,
      owned(sealed.subarray(NONCE_SIZE)),
    );
    return new Uint8Array(text);
  } catch {
    throw new DecryptionError();
  }
}
