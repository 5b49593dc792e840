/**
 * Device approval's payload, as `veil.client.device.approval_payload`: what a new
 * device shows (its user and public keys, short enough for a QR code) for an existing
 * device of the user to approve.
 */

import { PublicKey } from "../crypto/pre.js";
import { VerifyingKey } from "../crypto/signing.js";
import { b64decode, b64encode } from "../protocol/wire.js";

const PREFIX = "veil-approve-v1";

export function approvalPayload(userId: string, deviceKey: PublicKey, signingKey: VerifyingKey): string {
  return [PREFIX, userId, b64encode(deviceKey.bytes()), b64encode(signingKey.bytes())].join(":");
}

export function parseApproval(payload: string): [string, PublicKey, VerifyingKey] {
  const parts = payload.split(":");
  if (parts.length !== 4 || parts[0] !== PREFIX) throw new RangeError("not a Veil device-approval payload");
  return [parts[1] as string, PublicKey.fromBytes(b64decode(parts[2] as string)), new VerifyingKey(b64decode(parts[3] as string))];
}
