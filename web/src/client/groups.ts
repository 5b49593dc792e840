/**
 * Groups, as `veil.client.groups`: a PRE key pair whose private key only admins hold
 * (encrypted to them at the key service). Members get group -> user transform keys,
 * made by an admin's client. Group public keys are pinned like users' keys.
 */

import { openDocument } from "../crypto/aead.js";
import { toHex } from "../crypto/encoding.js";
import { PrivateKey, type PublicKey } from "../crypto/pre.js";
import { deriveKey } from "../crypto/schedule.js";
import { b64decode } from "../protocol/wire.js";
import { Conflict, PinnedKeyChanged, UntrustedKey } from "./errors.js";
import { type Principal, pinnedIdentities } from "./principal.js";
import { vouchedOrigin } from "./provenance.js";

/** A group's entry among the pins ('/' is in no user id, so none collides). */
function pinEntry(groupId: string): string {
  return `group/${groupId}`;
}

export interface GroupInfo {
  groupId: string;
  admins: string[];
  members: string[];
}

/** A group's member list by digest (`memberDigest`), without every member. */
export interface GroupDigest {
  groupId: string;
  admins: string[];
  membersDigest: Uint8Array;
  memberCount: number;
}

type Options = { acceptChanges?: boolean };

export class Groups {
  readonly #device: Principal;
  readonly #keys = new Map<string, PrivateKey>();

  constructor(device: Principal) {
    this.#device = device;
  }

  /** Create a group (this user becomes an admin) and add members and admins. */
  async create(
    groupId?: string,
    { members = [], admins = [], acceptChanges = false }: { members?: string[]; admins?: string[] } & Options = {},
  ): Promise<string> {
    const device = this.#device;
    const id = groupId ?? `group-${toHex(crypto.getRandomValues(new Uint8Array(12)))}`;
    const groupKey = PrivateKey.generate();
    await device.session.createGroup(id, groupKey, { userId: device.userId, master: device.masterPublicKey });
    this.#keys.set(id, groupKey);
    // Pinned at creation, over any pin of an earlier group of this id.
    await device.pin(pinEntry(id), groupKey.publicKey.bytes(), { acceptChanges: true });
    if (members.length) await this.addMembers(id, members, { acceptChanges });
    if (admins.length) await this.addAdmins(id, admins, { acceptChanges });
    return id;
  }

  /** The group's public key, pinned (`PinnedKeyChanged` naming the group). */
  async publicKey(groupId: string, { acceptChanges = false }: Options = {}): Promise<PublicKey> {
    const key = await this.#device.keyserver.groupPublicKey(groupId);
    try {
      await this.#device.pin(pinEntry(groupId), key.bytes(), { acceptChanges });
    } catch (error) {
      if (error instanceof PinnedKeyChanged) throw new PinnedKeyChanged(groupId);
      throw error;
    }
    return key;
  }

  /** The group's private key (admins only), checked as Python's `Groups.key`. */
  async key(groupId: string): Promise<PrivateKey> {
    let key = this.#keys.get(groupId);
    if (key === undefined) {
      const device = this.#device;
      const [delivery, envelope] = await device.session.groupPrivateKey(groupId);
      const what = `group ${JSON.stringify(groupId)}'s private key`;
      const { admins } = await this.get(groupId);
      const origin = await vouchedOrigin(delivery, admins, pinnedIdentities(device), what);
      const plaintext = await device.decrypt(delivery.transformed, { origin });
      key = PrivateKey.fromSecretBytes(await openDocument(await deriveKey(plaintext, "group key"), groupId, envelope));
      if (!key.publicKey.equals(await this.publicKey(groupId))) {
        throw new UntrustedKey(`${what} does not match the group's pinned public key`);
      }
      this.#keys.set(groupId, key);
    }
    return key;
  }

  async addMembers(groupId: string, userIds: string[], options: Options = {}): Promise<void> {
    const keys = await this.#device.publicKeys(userIds, options);
    const groupKey = await this.key(groupId);
    for (const userId of userIds) {
      await this.#device.session.addMember(groupId, groupKey, { userId, master: keys.get(userId)! });
    }
  }

  async removeMembers(groupId: string, userIds: string[]): Promise<void> {
    const groupKey = await this.key(groupId);
    for (const userId of userIds) await this.#device.session.removeMember(groupId, groupKey, userId);
  }

  async addAdmins(groupId: string, userIds: string[], options: Options = {}): Promise<void> {
    const keys = await this.#device.publicKeys(userIds, options);
    const groupKey = await this.key(groupId);
    for (const userId of userIds) {
      await this.#device.session.addAdmin(groupId, groupKey, { userId, master: keys.get(userId)! });
    }
  }

  /** Make `userId` an admin. If it became one meanwhile (two managers of a meeting naming
   * the same deputy, a hand-over beside a heartbeat), the outcome is the one asked for,
   * not a failure. */
  async ensureAdmin(groupId: string, userId: string): Promise<void> {
    try {
      await this.addAdmins(groupId, [userId]);
    } catch (error) {
      if (!(error instanceof Conflict && error.code === "already_admin")) throw error;
    }
  }

  async removeAdmins(groupId: string, userIds: string[]): Promise<void> {
    for (const userId of userIds) await this.#device.session.removeAdmin(groupId, userId);
  }

  async get(groupId: string): Promise<GroupInfo> {
    const data = await this.#device.session.group(groupId);
    return { groupId, admins: [...(data["admins"] as string[])], members: [...(data["members"] as string[])] };
  }

  async digest(groupId: string): Promise<GroupDigest> {
    const data = await this.#device.session.groupDigest(groupId);
    return {
      groupId,
      admins: [...(data["admins"] as string[])],
      membersDigest: b64decode(data["members_digest"] as string),
      memberCount: data["member_count"] as number,
    };
  }

  list(): Promise<string[]> {
    return this.#device.session.groups();
  }

  /** Delete the group: every transform key of it goes, at once. */
  async delete(groupId: string): Promise<void> {
    await this.#device.session.deleteGroup(groupId);
    this.#keys.delete(groupId);
  }

  forget(groupId: string): void {
    this.#keys.delete(groupId);
  }

  toJSON(): string {
    return "Groups";
  }
}
