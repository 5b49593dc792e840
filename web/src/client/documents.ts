/**
 * Durable artifacts, as `veil.client.documents`: bytes or streams encrypted once, with
 * a fresh DEK, to users and groups. The DEK is a PRE plaintext the key service keeps
 * encrypted per grantee and transforms for a device a grant reaches; the envelope (or
 * the stream's segments) is the application's to store.
 *
 * Helpers cover the artifact kinds: chat transcripts, recordings, shared files, and
 * abuse reports (to a safety-team group only: not even the reporter keeps access).
 */

import { openDocument, openStream, sealDocument, sealStream } from "../crypto/aead.js";
import { toHex } from "../crypto/encoding.js";
import { DecodeError, DecryptionError } from "../crypto/errors.js";
import { Plaintext, type PublicKey, encrypt } from "../crypto/pre.js";
import { deriveKey } from "../crypto/schedule.js";
import { b64encode } from "../protocol/wire.js";
import { UntrustedKey } from "./errors.js";
import type { Groups } from "./groups.js";
import { type Principal, pinnedIdentities } from "./principal.js";
import { vouchedOrigin } from "./provenance.js";

export type Kind = "transcript" | "recording" | "file" | "abuse_report" | "agenda" | "other";

export class EncryptedDocument {
  constructor(
    readonly documentId: string,
    readonly kind: Kind,
    readonly envelope: Uint8Array,
  ) {}

  toJSON(): Record<string, string | number> {
    return { documentId: this.documentId, kind: this.kind, bytes: this.envelope.length };
  }
}

/** A stream being encrypted: its id, and the header then sealed segments, made as
 * `segments` is read (each one is the application's to store or send, in order). */
export class EncryptedStream {
  constructor(
    readonly documentId: string,
    readonly kind: Kind,
    readonly segments: AsyncGenerator<Uint8Array>,
  ) {}

  toJSON(): Record<string, string> {
    return { documentId: this.documentId, kind: this.kind };
  }
}

export interface Recipients {
  users?: string[];
  groups?: string[];
}

export interface EncryptOptions extends Recipients {
  kind?: Kind;
  documentId?: string;
  /** Whether this user keeps a grant (default true; an abuse report keeps none). */
  keepAccess?: boolean;
}

/** Plaintext chunks or sealed pieces, of any size, from an array, generator or stream. */
export type Chunks = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

const encoder = new TextEncoder();

function dek(plaintext: Plaintext, documentId: string): Promise<Uint8Array> {
  return deriveKey(plaintext, "document", encoder.encode(documentId));
}

/** A stream's plaintext; a malformed (altered or cut) header fails as `DecryptionError`. */
async function* opened(chunks: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* chunks;
  } catch (error) {
    if (error instanceof DecodeError) throw new DecryptionError();
    throw error;
  }
}

export class Documents {
  readonly #device: Principal;
  readonly #groups: Groups;

  constructor(device: Principal, groups: Groups) {
    this.#device = device;
    this.#groups = groups;
  }

  async #grants(plaintext: Plaintext, users: string[], groups: string[]): Promise<Record<string, string>[]> {
    const recipients: [string, string, PublicKey][] = [];
    if (users.length) {
      const keys = await this.#device.publicKeys(users);
      for (const user of users) recipients.push(["user", user, keys.get(user)!]);
    }
    for (const groupId of groups) recipients.push(["group", groupId, await this.#groups.publicKey(groupId)]);
    const grants: Record<string, string>[] = [];
    for (const [kind, grantee, key] of recipients) {
      const encrypted = await encrypt(plaintext, key, this.#device.signer);
      grants.push({ grantee_kind: kind, grantee_id: grantee, encrypted_key: b64encode(encrypted.bytes()) });
    }
    return grants;
  }

  async #create(
    kind: Kind,
    { users = [], groups = [], documentId, keepAccess = true }: Omit<EncryptOptions, "kind">,
  ): Promise<[string, Plaintext]> {
    const id = documentId ?? `${kind}-${toHex(crypto.getRandomValues(new Uint8Array(12)))}`;
    const readers = [...new Set([...users, ...(keepAccess ? [this.#device.userId] : [])])];
    if (!readers.length && !groups.length) throw new RangeError("a document needs at least one user or group to read it");
    const plaintext = Plaintext.generate();
    await this.#device.session.createDocument(id, kind, await this.#grants(plaintext, readers, groups));
    return [id, plaintext];
  }

  /** Encrypt `data` to the users and groups (and, unless `keepAccess` is false, to
   * this user). */
  async encrypt(data: Uint8Array, { kind = "file", ...options }: EncryptOptions = {}): Promise<EncryptedDocument> {
    const [id, plaintext] = await this.#create(kind, options);
    return new EncryptedDocument(id, kind, await sealDocument(await dek(plaintext, id), id, data));
  }

  /** Encrypt a stream (a recording) as `encrypt` does bytes: the document is created
   * (and its grants written) before this returns; `segments` seals `chunks` as it is
   * read, a header first, then one segment per 64 KiB. */
  async encryptStream(chunks: Chunks, { kind = "recording", ...options }: EncryptOptions = {}): Promise<EncryptedStream> {
    const [id, plaintext] = await this.#create(kind, options);
    return new EncryptedStream(id, kind, sealStream(await dek(plaintext, id), id, chunks));
  }

  /** The document's key, once provenance checked a certified device of its owner
   * (of `author`, if given) encrypted it. */
  async #plaintext(documentId: string, author?: string): Promise<Plaintext> {
    const device = this.#device;
    const delivery = await device.session.documentKey(documentId);
    const what = `document ${JSON.stringify(documentId)}'s key`;
    if (delivery.owner === null) throw new UntrustedKey(`the key service names no owner of ${what}`);
    if (author !== undefined && delivery.owner !== author) {
      throw new UntrustedKey(`${what} is ${JSON.stringify(delivery.owner)}'s, not ${JSON.stringify(author)}'s`);
    }
    const origin = await vouchedOrigin(delivery, [delivery.owner], pinnedIdentities(device), what);
    return device.decrypt(delivery.transformed, { origin });
  }

  /** `NotMember` if no grant reaches this device; `DecryptionError` if altered;
   * `UntrustedKey` if its key was not made by a certified device of its owner. */
  async decrypt(document: EncryptedDocument, { author }: { author?: string } = {}): Promise<Uint8Array> {
    const plaintext = await this.#plaintext(document.documentId, author);
    try {
      return await openDocument(await dek(plaintext, document.documentId), document.documentId, document.envelope);
    } catch (error) {
      if (error instanceof DecodeError) throw new DecryptionError(); // an altered header byte
      throw error;
    }
  }

  /** A stream's plaintext chunks, its key checked as `decrypt` checks it (so
   * `NotMember` or `UntrustedKey` before any segment is read). Each chunk is
   * authenticated before it is yielded; a reordered, altered or extended segment
   * fails as `DecryptionError` where it is read, a cut stream at its end: act on
   * the plaintext only once the iteration has ended without an error. */
  async decryptStream(documentId: string, segments: Chunks, { author }: { author?: string } = {}): Promise<AsyncGenerator<Uint8Array>> {
    const plaintext = await this.#plaintext(documentId, author);
    return opened(openStream(await dek(plaintext, documentId), documentId, segments));
  }

  /** Give more users or groups access (the owner must be able to read it). */
  async grant(documentId: string, { users = [], groups = [] }: Recipients): Promise<void> {
    const plaintext = await this.#plaintext(documentId);
    for (const grant of await this.#grants(plaintext, users, groups)) await this.#device.session.grant(documentId, grant);
  }

  async revoke(documentId: string, { users = [], groups = [] }: Recipients): Promise<void> {
    for (const userId of users) await this.#device.session.revokeGrant(documentId, "user", userId);
    for (const groupId of groups) await this.#device.session.revokeGrant(documentId, "group", groupId);
  }

  // --- the artifact kinds -----------------------------------------------------------------

  saveTranscript(transcript: Uint8Array, { users = [], groups = [] }: Recipients = {}): Promise<EncryptedDocument> {
    return this.encrypt(transcript, { kind: "transcript", users, groups });
  }

  saveRecording(chunks: Chunks, { users = [], groups = [] }: Recipients = {}): Promise<EncryptedStream> {
    return this.encryptStream(chunks, { kind: "recording", users, groups });
  }

  shareFile(data: Uint8Array, { users = [], groups = [] }: Recipients = {}): Promise<EncryptedDocument> {
    return this.encrypt(data, { kind: "file", users, groups });
  }

  /** Encrypt evidence to the safety team's group only (the reporter keeps no access). */
  reportAbuse(evidence: Uint8Array, { safetyTeam }: { safetyTeam: string }): Promise<EncryptedDocument> {
    return this.encrypt(evidence, { kind: "abuse_report", groups: [safetyTeam], keepAccess: false });
  }

  toJSON(): string {
    return "Documents";
  }
}
