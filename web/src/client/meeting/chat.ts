/** Meeting chat, as `veil.client.meeting.chat`: messages sealed under the epoch's chat
 * key, posted on the board. */

import { openSealed, seal as sealChat } from "../../crypto/chat.js";
import { VeilCryptoError } from "../../crypto/errors.js";
import { Chat } from "../../protocol/board.js";
import type { Post } from "../board.js";

/** Chat messages held for a key on its way, at most; past it the oldest are dropped. */
export const AHEAD_LIMIT = 256;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export class ChatMessage {
  readonly #text: string;
  constructor(
    readonly userId: string,
    readonly sender: bigint,
    readonly epoch: bigint,
    text: string,
  ) {
    this.#text = text;
  }
  /** The message (kept out of JSON and inspection, as Python keeps it out of repr). */
  get text(): string {
    return this.#text;
  }

  /** Who sent it and when, without the text; bigints as decimal strings. */
  toJSON(): Record<string, string> {
    return { userId: this.userId, sender: this.sender.toString(), epoch: this.epoch.toString() };
  }
}

export async function seal(sessionKey: Uint8Array, text: string, o: { meetingId: string; epoch: bigint; sender: bigint }): Promise<Chat> {
  const sealed = await sealChat(sessionKey, encoder.encode(text), o.meetingId, o.epoch, o.sender);
  return new Chat(o.epoch, o.sender, sealed);
}

/** The message, or `null` if it does not open under this key (another epoch's members,
 * or tampered) or is not UTF-8. */
export async function openChat(sessionKey: Uint8Array, message: Chat, o: { meetingId: string; userId: string }): Promise<ChatMessage | null> {
  let text: string;
  try {
    text = decoder.decode(await openSealed(sessionKey, message.sealed, o.meetingId, message.epoch, message.sender));
  } catch (error) {
    if (error instanceof VeilCryptoError || error instanceof TypeError) return null;
    throw error;
  }
  return new ChatMessage(o.userId, message.sender, message.epoch, text);
}

/**
 * Chat of an epoch newer than the key this client holds. In a rekey the poster's key and
 * the transforms reach devices at different moments, and whoever installed first may
 * chat at once: such a message waits for the key rather than being lost. Bounded
 * (`AHEAD_LIMIT`): a flood of messages for an epoch that never comes costs memory once,
 * then pushes out its own oldest.
 */
export class Ahead {
  #held: [Post, Chat][] = [];
  constructor(readonly limit = AHEAD_LIMIT) {}

  hold(post: Post, message: Chat): void {
    this.#held.push([post, message]);
    if (this.#held.length > this.limit) this.#held.shift();
  }

  /** The held messages of `epoch` or older, in board order (the rest stay). */
  due(epoch: bigint): [Post, Chat][] {
    const due = this.#held.filter(([, message]) => message.epoch <= epoch);
    this.#held = this.#held.filter(([, message]) => message.epoch > epoch);
    return due;
  }

  clear(): void {
    this.#held = [];
  }

  get size(): number {
    return this.#held.length;
  }
}
