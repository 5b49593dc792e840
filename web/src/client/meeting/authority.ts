/**
 * Proofs by the meeting group's key, as `veil.client.meeting.authority`: what makes a
 * key, hand-over or end post an admin's. Only admins hold the group's private key;
 * every client checks proofs against the group key of the invitation, never against a
 * key the key service or a post names.
 */

import { VeilCryptoError } from "../../crypto/errors.js";
import type { PublicKey } from "../../crypto/pre.js";
import { MeetingProof } from "../../protocol/board.js";
import { UntrustedPost } from "../errors.js";
import type { Groups } from "../groups.js";

/** A proof with the group's private key, fetched from the key service and checked
 * against the invitation's group key first. */
export async function makeProof(
  groups: Groups,
  meetingId: string,
  groupKey: PublicKey,
  userId: string,
  now: bigint,
  action: string,
  payload: Uint8Array = new Uint8Array(),
): Promise<MeetingProof> {
  const key = await groups.key(meetingId);
  if (!key.publicKey.equals(groupKey)) throw new UntrustedPost("the key service's group key is not the invitation's");
  return MeetingProof.make(action, meetingId, userId, now, key, payload);
}

/** `UntrustedPost` unless `proof` was made with the invitation's group key for this
 * action, meeting, poster and payload. */
export async function checkProof(
  proof: MeetingProof,
  o: { action: string; meetingId: string; poster: string; groupKey: PublicKey; payload?: Uint8Array },
): Promise<void> {
  try {
    await proof.verify(o.action, o.meetingId, o.poster, o.groupKey, o.payload ?? new Uint8Array());
  } catch (error) {
    if (error instanceof VeilCryptoError || error instanceof RangeError) {
      throw new UntrustedPost(`a ${o.action} post without a proof by a meeting admin`);
    }
    throw error;
  }
}
