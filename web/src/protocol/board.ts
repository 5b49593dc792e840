/**
 * The meeting board's messages, as `veil.protocol.board` (docs/protocol.md §3.4): one
 * canonical JSON body per kind, and a strict `parse` that takes a body only in that
 * form, so both SDKs read and write the same bytes.
 */

import { DecodeError } from "../crypto/errors.js";
import * as schnorr from "../crypto/schnorr.js";
import type { PublicKey } from "../crypto/pre.js";
import { type Json, JsonError, canonical, parseJson } from "./json.js";
import { memberDigest, sortedByCodePoint } from "./members.js";
import { b64decode, b64encode, meetingProofMessage } from "./wire.js";

export const EPOCH_LIMIT = 2n ** 64n;
export const SENDER_LIMIT = 2n ** 44n;
export const DIGEST_SIZE = 32;
export const MAX_CHANGES_BYTES = 32 * 1024;
/** The most a key post's `invitees` take in its body (their canonical JSON, UTF-8). */
export const MAX_INVITEES_BYTES = 16 * 1024;
const USER_ID = /^[^\x00-\x1f\x7f\ud800-\udfff]{1,256}$/u;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export class BoardMessageError extends Error {
  override name = "BoardMessageError";
}

/** A key post whose `invitees` take more than `MAX_INVITEES_BYTES`. */
export class TooManyInvitees extends BoardMessageError {
  override name = "TooManyInvitees";
}

/** A meeting admin's proof on a post: its `timestamp` and `proof` fields. */
export class MeetingProof {
  constructor(
    readonly timestamp: bigint,
    readonly signature: schnorr.SchnorrSignature,
  ) {}

  static async make(
    action: string,
    meetingId: string,
    userId: string,
    now: bigint,
    groupKey: Parameters<typeof schnorr.sign>[1],
    payload: Uint8Array = new Uint8Array(),
  ): Promise<MeetingProof> {
    const message = meetingProofMessage(action, meetingId, userId, now, payload);
    return new MeetingProof(now, await schnorr.sign(message, groupKey));
  }

  fields(): Record<string, Json> {
    return { timestamp: this.timestamp, proof: b64encode(this.signature.bytes()) };
  }

  /** Nothing, or `InvalidSignature`. */
  verify(action: string, meetingId: string, userId: string, groupKey: PublicKey, payload: Uint8Array = new Uint8Array()): Promise<void> {
    const message = meetingProofMessage(action, meetingId, userId, this.timestamp, payload);
    return schnorr.verify(this.signature, message, groupKey);
  }
}

class Fields {
  readonly data: Record<string, Json>;

  constructor(
    readonly kind: string,
    body: Uint8Array,
    names: readonly string[],
  ) {
    let data: Json;
    try {
      data = parseJson(decoder.decode(body));
    } catch (error) {
      if (error instanceof JsonError || error instanceof TypeError) {
        throw new BoardMessageError(`${kind}: the body is not UTF-8 JSON`);
      }
      throw error;
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      throw new BoardMessageError(`${kind}: the body is not a JSON object`);
    }
    const keys = Object.keys(data);
    if (keys.length !== names.length || !names.every((n) => keys.includes(n))) {
      throw new BoardMessageError(`${kind}: the body has exactly the fields ${[...names].sort()}`);
    }
    this.data = data;
  }

  integer(name: string, limit: bigint): bigint {
    const value = this.data[name];
    if (typeof value !== "bigint" || value < 0n || value >= limit) {
      throw new BoardMessageError(`${this.kind}: ${name} is an integer in [0, ${limit})`);
    }
    return value;
  }

  optionalInteger(name: string, limit: bigint): bigint | null {
    return this.data[name] === null ? null : this.integer(name, limit);
  }

  raw(name: string): Uint8Array {
    const value = this.data[name];
    try {
      return b64decode(value as string);
    } catch {
      throw new BoardMessageError(`${this.kind}: ${name} is unpadded base64url`);
    }
  }

  digest(name: string): Uint8Array {
    const value = this.raw(name);
    if (value.length !== DIGEST_SIZE) throw new BoardMessageError(`${this.kind}: ${name} is a ${DIGEST_SIZE}-byte digest`);
    return value;
  }

  users(name: string): string[] {
    const value = this.data[name];
    if (!Array.isArray(value) || !value.every((u) => typeof u === "string" && USER_ID.test(u))) {
      throw new BoardMessageError(`${this.kind}: ${name} is a list of user ids`);
    }
    const users = value as string[];
    const sorted = sortedByCodePoint(new Set(users));
    if (sorted.length !== users.length || sorted.some((u, i) => u !== users[i])) {
      throw new BoardMessageError(`${this.kind}: ${name} is sorted, without repeats`);
    }
    return users;
  }

  user(name: string): string {
    const value = this.data[name];
    if (typeof value !== "string" || !USER_ID.test(value)) throw new BoardMessageError(`${this.kind}: ${name} is a user id`);
    return value;
  }

  proof(): MeetingProof {
    const { timestamp, proof } = this.data;
    try {
      if (typeof timestamp !== "bigint" || timestamp < 0n || timestamp >= 2n ** 64n || typeof proof !== "string") {
        throw new DecodeError("malformed");
      }
      return new MeetingProof(timestamp, schnorr.SchnorrSignature.fromBytes(b64decode(proof)));
    } catch {
      throw new BoardMessageError(`${this.kind}: timestamp and proof are malformed`);
    }
  }
}

abstract class Message {
  abstract readonly kind: string;
  abstract fields(): Record<string, Json>;

  bytes(): Uint8Array {
    return encoder.encode(canonical(this.fields()));
  }
}

function checkCanonical<M extends Message>(message: M, body: Uint8Array): M {
  const again = message.bytes();
  if (again.length !== body.length || again.some((b, i) => b !== body[i])) {
    throw new BoardMessageError(`${message.kind}: the body is not in canonical form`);
  }
  return message;
}

export class Announce extends Message {
  static readonly KIND = "announce";
  readonly kind = Announce.KIND;
  constructor(readonly sender: bigint) {
    super();
  }
  fields(): Record<string, Json> {
    return { sender: this.sender };
  }
  static parse(body: Uint8Array): Announce {
    const f = new Fields(Announce.KIND, body, ["sender"]);
    return checkCanonical(new Announce(f.integer("sender", SENDER_LIMIT)), body);
  }
}

export class Leave extends Message {
  static readonly KIND = "leave";
  readonly kind = Leave.KIND;
  constructor(readonly sender: bigint) {
    super();
  }
  fields(): Record<string, Json> {
    return { sender: this.sender };
  }
  static parse(body: Uint8Array): Leave {
    const f = new Fields(Leave.KIND, body, ["sender"]);
    return checkCanonical(new Leave(f.integer("sender", SENDER_LIMIT)), body);
  }
}

function pythonJsonSize(joined: readonly string[], left: readonly string[]): number {
  // len(json.dumps([joined, left]).encode()): the ASCII-escaped form Python measures.
  const list = (items: readonly string[]): string =>
    `[${items.map((u) => JSON.stringify(u).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)).join(", ")}]`;
  return encoder.encode(`[${list(joined)}, ${list(left)}]`).length;
}

/** An epoch's session key for the group, and its member list as a change (§3.4). */
export class KeyPost extends Message {
  static readonly KIND = "key";
  readonly kind = KeyPost.KIND;

  constructor(
    readonly epoch: bigint,
    readonly encryptedKey: Uint8Array,
    readonly membersDigest: Uint8Array,
    readonly baseDigest: Uint8Array,
    readonly joined: readonly string[],
    readonly left: readonly string[],
    readonly invitees: readonly string[],
    readonly host: string,
    readonly proof: MeetingProof,
  ) {
    super();
    if (joined.some((u) => left.includes(u))) throw new BoardMessageError("key: joined and left share a user");
    const same = membersDigest.every((b, i) => b === baseDigest[i]);
    if (same && (joined.length || left.length)) throw new BoardMessageError("key: a change that leaves the list as it was");
    if (encoder.encode(canonical([...invitees])).length > MAX_INVITEES_BYTES) {
      throw new TooManyInvitees(`key: invitees take more than ${MAX_INVITEES_BYTES} bytes`);
    }
  }

  /** `[membersDigest, baseDigest, joined, left]` for a post whose list is `after`, by a poster who held `before`. */
  static async changes(
    before: readonly string[],
    after: readonly string[],
  ): Promise<[Uint8Array, Uint8Array, string[], string[]]> {
    const members = await memberDigest(after);
    const old = new Set(before);
    const now = new Set(after);
    const joined = sortedByCodePoint([...now].filter((u) => !old.has(u)));
    const left = sortedByCodePoint([...old].filter((u) => !now.has(u)));
    if (pythonJsonSize(joined, left) > MAX_CHANGES_BYTES) return [members, members, [], []];
    return [members, await memberDigest(before), joined, left];
  }

  /** The post's member list from `base` (the list whose digest is `baseDigest`), or null. */
  async apply(base: readonly string[]): Promise<string[] | null> {
    const held = new Set(base);
    if (this.joined.some((u) => held.has(u)) || !this.left.every((u) => held.has(u))) return null;
    for (const u of this.left) held.delete(u);
    for (const u of this.joined) held.add(u);
    const after = sortedByCodePoint(held);
    const digest = await memberDigest(after);
    return digest.every((b, i) => b === this.membersDigest[i]) ? after : null;
  }

  fields(): Record<string, Json> {
    return {
      epoch: this.epoch,
      encrypted_key: b64encode(this.encryptedKey),
      members_digest: b64encode(this.membersDigest),
      base_digest: b64encode(this.baseDigest),
      joined: [...this.joined],
      left: [...this.left],
      invitees: [...this.invitees],
      host: this.host,
      ...this.proof.fields(),
    };
  }

  static parse(body: Uint8Array): KeyPost {
    const f = new Fields(KeyPost.KIND, body, [
      "epoch", "encrypted_key", "members_digest", "base_digest", "joined", "left", "invitees", "host",
      "timestamp", "proof",
    ]); // prettier-ignore
    const post = new KeyPost(
      f.integer("epoch", EPOCH_LIMIT),
      f.raw("encrypted_key"),
      f.digest("members_digest"),
      f.digest("base_digest"),
      f.users("joined"),
      f.users("left"),
      f.users("invitees"),
      f.user("host"),
      f.proof(),
    );
    return checkCanonical(post, body);
  }
}

export class HandOver extends Message {
  static readonly KIND = "hand-over";
  readonly kind = HandOver.KIND;
  constructor(
    readonly sender: bigint,
    readonly proof: MeetingProof,
  ) {
    super();
  }
  fields(): Record<string, Json> {
    return { sender: this.sender, ...this.proof.fields() };
  }
  static payload(sender: bigint): Uint8Array {
    return encoder.encode(sender.toString());
  }
  static parse(body: Uint8Array): HandOver {
    const f = new Fields(HandOver.KIND, body, ["sender", "timestamp", "proof"]);
    return checkCanonical(new HandOver(f.integer("sender", SENDER_LIMIT), f.proof()), body);
  }
}

export class End extends Message {
  static readonly KIND = "end";
  readonly kind = End.KIND;
  constructor(readonly proof: MeetingProof) {
    super();
  }
  fields(): Record<string, Json> {
    return this.proof.fields();
  }
  static parse(body: Uint8Array): End {
    const f = new Fields(End.KIND, body, ["timestamp", "proof"]);
    return checkCanonical(new End(f.proof()), body);
  }
}

export class Chat extends Message {
  static readonly KIND = "chat";
  readonly kind = Chat.KIND;
  constructor(
    readonly epoch: bigint,
    readonly sender: bigint,
    readonly sealed: Uint8Array,
  ) {
    super();
  }
  fields(): Record<string, Json> {
    return { epoch: this.epoch, sender: this.sender, sealed: b64encode(this.sealed) };
  }
  static parse(body: Uint8Array): Chat {
    const f = new Fields(Chat.KIND, body, ["epoch", "sender", "sealed"]);
    return checkCanonical(new Chat(f.integer("epoch", EPOCH_LIMIT), f.integer("sender", SENDER_LIMIT), f.raw("sealed")), body);
  }
}

export class Alive extends Message {
  static readonly KIND = "alive";
  readonly kind = Alive.KIND;
  constructor(
    readonly epoch: bigint,
    readonly deputy: bigint | null,
  ) {
    super();
  }
  fields(): Record<string, Json> {
    return { epoch: this.epoch, deputy: this.deputy };
  }
  static parse(body: Uint8Array): Alive {
    const f = new Fields(Alive.KIND, body, ["epoch", "deputy"]);
    return checkCanonical(new Alive(f.integer("epoch", EPOCH_LIMIT), f.optionalInteger("deputy", SENDER_LIMIT)), body);
  }
}

export type BoardMessage = Announce | Leave | KeyPost | HandOver | End | Chat | Alive;

const PARSERS: Record<string, (body: Uint8Array) => BoardMessage> = {
  announce: Announce.parse,
  leave: Leave.parse,
  key: KeyPost.parse,
  "hand-over": HandOver.parse,
  end: End.parse,
  chat: Chat.parse,
  alive: Alive.parse,
};

export const KINDS = Object.keys(PARSERS);

export function parse(kind: string, body: Uint8Array): BoardMessage {
  const parser = Object.hasOwn(PARSERS, kind) ? PARSERS[kind] : undefined;
  if (parser === undefined) throw new BoardMessageError(`unknown post kind ${JSON.stringify(kind)}`);
  return parser(body);
}
