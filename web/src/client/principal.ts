/**
 * `Principal`: a registered device as its groups and documents use it, as
 * `veil.client.principal`. Naming these pieces keeps the dependency one way (device
 * imports groups and documents, which import only this); members are read on each
 * use, never copied, since a key rotation replaces the signer and session.
 */

import type { Plaintext, PublicKey, VerifiedEncryptedValue } from "../crypto/pre.js";
import type { SigningKey } from "../crypto/signing.js";
import type { DeviceSession, KeyServerClient, UserKeys } from "./keyserver.js";

export interface Principal {
  readonly userId: string;
  /** This user's master public key: what is encrypted to the user. */
  readonly masterPublicKey: PublicKey;
  /** This device's current signing key (it signs the ciphertexts it makes). */
  readonly signer: SigningKey;
  readonly keyserver: KeyServerClient;
  readonly session: DeviceSession;
  /** Check `encoded` against the pin `entry` and pin it (`PinnedKeyChanged`). */
  pin(entry: string, encoded: Uint8Array, options?: { acceptChanges?: boolean }): Promise<void>;
  publicKeys(userIds: readonly string[], options?: { acceptChanges?: boolean }): Promise<Map<string, PublicKey>>;
  userKeys(userIds: readonly string[], options?: { acceptChanges?: boolean }): Promise<Map<string, UserKeys>>;
  decrypt(value: VerifiedEncryptedValue, options?: { origin?: VerifiedEncryptedValue }): Promise<Plaintext>;
}

/** Users' identity keys as `device` pins them (`PinnedKeyChanged` on a change). */
export function pinnedIdentities(device: Principal): (userId: string) => Promise<PublicKey> {
  return async (userId) => (await device.userKeys([userId])).get(userId)!.identity;
}
