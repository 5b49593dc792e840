/**
 * Meeting invitations, as `veil.client.invitation`: the meeting id *and* the meeting
 * group's public key, the root of trust of a meeting (a joiner accepts a session key
 * only with a proof made with the group's private key). The key reaches joiners
 * through the platform, and a joiner goes on only if the key service holds the same
 * key: subverting it takes the key service and the platform together.
 *
 * Text form: `veil-meeting-v1:<meeting id>:<group public key, base64url>` (the meeting
 * id may itself contain `:`).
 */

import { PublicKey } from "../crypto/pre.js";
import { b64decode, b64encode } from "../protocol/wire.js";

const PREFIX = "veil-meeting-v1";
const MEETING_ID = /^[A-Za-z0-9._@:-]{1,256}$/; // the services' id syntax, less . and ..

export class Invitation {
  constructor(
    readonly meetingId: string,
    readonly groupKey: PublicKey,
  ) {}

  toString(): string {
    return `${PREFIX}:${this.meetingId}:${b64encode(this.groupKey.bytes())}`;
  }

  toJSON(): string {
    return this.toString(); // public: an id and a public key
  }

  /** Strictly decode an invitation; `RangeError` says what is wrong. */
  static parse(text: string): Invitation {
    const colon = text.indexOf(":");
    const prefix = colon < 0 ? text : text.slice(0, colon);
    const rest = colon < 0 ? "" : text.slice(colon + 1);
    const last = rest.lastIndexOf(":");
    const meetingId = last < 0 ? "" : rest.slice(0, last);
    const key = last < 0 ? rest : rest.slice(last + 1);
    if (prefix !== PREFIX || !meetingId || !key) {
      throw new RangeError(`not a Veil meeting invitation (expected '${PREFIX}:<id>:<key>')`);
    }
    if (!MEETING_ID.test(meetingId) || meetingId === "." || meetingId === "..") {
      throw new RangeError("the invitation's meeting id is not a valid id");
    }
    let groupKey: PublicKey;
    try {
      groupKey = PublicKey.fromBytes(b64decode(key));
    } catch {
      throw new RangeError("the invitation's group key is malformed");
    }
    return new Invitation(meetingId, groupKey);
  }
}
