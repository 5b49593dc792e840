/**
 * Where a delivered key comes from, checked before it is decrypted, as
 * `veil.client.provenance`: the transformed value is signed by the transform signer
 * (checked as it is read); it descends from the level-0 origin; the origin is signed
 * by the device the key service names as its author; that device is certified by its
 * user's pinned identity key; and that user may have made it. Each failure raises
 * `UntrustedKey` before anything is decrypted.
 */

import { InvalidSignature } from "../crypto/errors.js";
import { type PublicKey, type VerifiedEncryptedValue, descendsFrom } from "../crypto/pre.js";
import { UncertifiedDevice, UntrustedKey } from "./errors.js";
import type { DeviceRecord, KeyDelivery } from "./keyserver.js";

/** `identity(userId)`: the user's identity key, as this device pinned it. */
export type IdentityLookup = (userId: string) => Promise<PublicKey>;

/** Checks but the certificate: the verified origin and the author to check. */
export async function signedOrigin(
  delivery: KeyDelivery,
  authors: readonly string[],
  what: string,
): Promise<[VerifiedEncryptedValue, DeviceRecord]> {
  const author = delivery.author;
  if (author === null) throw new UntrustedKey(`the key service names no certified author of ${what}`);
  if (!authors.includes(author.userId)) {
    throw new UntrustedKey(`${what} was made by ${JSON.stringify(author.userId)}, who may not make it`);
  }
  if (delivery.origin.level !== 0) throw new UntrustedKey(`the origin of ${what} is not a level-0 ciphertext`);
  let origin: VerifiedEncryptedValue;
  try {
    origin = await delivery.origin.verify({ signer: author.signingKey });
  } catch (error) {
    if (error instanceof InvalidSignature) throw new UntrustedKey(`the origin of ${what} is not signed by its author`);
    throw error;
  }
  if (!descendsFrom(delivery.transformed, origin)) throw new UntrustedKey(`${what} does not descend from its origin`);
  return [origin, author];
}

export async function checkAuthor(author: DeviceRecord, identity: PublicKey, what: string): Promise<void> {
  try {
    await author.checkCertificate(identity);
  } catch (error) {
    if (error instanceof UncertifiedDevice) {
      throw new UntrustedKey(`the author of ${what} is a device its user did not certify`);
    }
    throw error;
  }
}

/** The origin of a delivered key, once every check passed. */
export async function vouchedOrigin(
  delivery: KeyDelivery,
  authors: readonly string[],
  identity: IdentityLookup,
  what: string,
): Promise<VerifiedEncryptedValue> {
  const [origin, author] = await signedOrigin(delivery, authors, what);
  await checkAuthor(author, await identity(author.userId), what);
  return origin;
}
