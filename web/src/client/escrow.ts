/**
 * The user key's escrow password in each mode, and the escrow's opening, as
 * `veil.client.device._escrow_password` and `_open_escrow`.
 */

import { DecryptionError } from "../crypto/errors.js";
import { openEscrow, splitTrustPassword } from "../crypto/escrow.js";
import { PrivateKey } from "../crypto/pre.js";
import type { ConferenceClient } from "./conference.js";
import { ApprovalPending, WrongPassword } from "./errors.js";
import type { KeyServerClient } from "./keyserver.js";
import type { Mode } from "./store.js";

/** `tokens(audience)`: a fresh JWT for the user from the platform's IdP. */
export type TokenSource = (audience: string) => Promise<string>;
export type PasswordSource = () => Promise<string>;

const encoder = new TextEncoder();

export async function escrowPassword(
  keyserver: KeyServerClient,
  conference: ConferenceClient,
  tokens: TokenSource,
  mode: Mode,
  password: PasswordSource | undefined,
): Promise<Uint8Array> {
  if (mode === "split-trust") {
    // Each service's share with a token for that service alone: neither can replay
    // the other's token to collect both shares.
    const [keyserverToken, conferenceToken] = await Promise.all([tokens(keyserver.audience), tokens(conference.audience)]);
    const [a, b] = await Promise.all([keyserver.share(keyserverToken), conference.share(conferenceToken)]);
    return splitTrustPassword(a, b);
  }
  if (mode === "password") {
    const text = (await (password as PasswordSource)()).normalize("NFC");
    if (!text) throw new WrongPassword("the password must not be empty");
    return encoder.encode(text);
  }
  throw new ApprovalPending("in approval mode the user key comes from an approved device");
}

export async function openUserKey(escrow: Uint8Array, secret: Uint8Array, userId: string): Promise<PrivateKey> {
  try {
    return PrivateKey.fromSecretBytes(await openEscrow(escrow, secret, encoder.encode(userId)));
  } catch (error) {
    if (error instanceof DecryptionError) throw new WrongPassword("the escrow password did not open the user key");
    throw error;
  }
}
