/** Meeting chat, as `veil.client.meeting.chat`: messages sealed under the epoch's chat
 * key, posted on the board. */

import { openSealed, seal as sealChat } from "../../crypto/chat.js";
import { VeilCryptoError } from "../../crypto/errors.js";
import { Chat } from "../../protocol/board.js";

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
