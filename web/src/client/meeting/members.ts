/**
 * The member lists of a meeting's recent key posts, by digest, as
 * `veil.client.meeting.members` (docs/protocol.md §3.4).
 *
 * A key post names its member list by digest and carries only the change from the
 * list of the key its poster held (`KeyPost`). Every client follows each key post in
 * board order, so it knows the list of every post whose base it knew. A client that
 * joined from a board whose history it could not follow, or saw a change too large to
 * carry, fetches the group's list from the key service and takes it only if its
 * digest is the post's (the key service cannot substitute a list), trying again while
 * the group is changing.
 */

import { toHex } from "../../crypto/encoding.js";
import type { KeyPost } from "../../protocol/board.js";
import { memberDigest, sortedByCodePoint } from "../../protocol/members.js";
import { MembersChanging } from "../errors.js";

/** Lists kept: key posts whose list a client has not taken yet are few. */
const KEPT = 16;

export class MemberLists {
  readonly #lists = new Map<string, readonly string[]>(); // by hex digest, oldest first
  readonly #ready: Promise<void>;

  constructor(
    private readonly fetch: () => Promise<readonly string[]>,
    private readonly userId = "",
  ) {
    this.#ready = this.remember([]).then(() => undefined);
  }

  #touch(digest: string, members: readonly string[]): void {
    this.#lists.delete(digest);
    this.#lists.set(digest, members);
    while (this.#lists.size > KEPT) this.#lists.delete(this.#lists.keys().next().value as string);
  }

  /** Keep `members` (a list this client made or checked); its digest. */
  async remember(members: Iterable<string>): Promise<Uint8Array> {
    const sorted = Object.freeze(sortedByCodePoint(members));
    const digest = await memberDigest(sorted);
    this.#touch(toHex(digest), sorted);
    return digest;
  }

  /** Learn a key post's list from its base, if this client holds the base. */
  async follow(post: KeyPost): Promise<void> {
    await this.#ready;
    const digest = toHex(post.membersDigest);
    const known = this.#lists.get(digest);
    if (known !== undefined) return this.#touch(digest, known);
    const base = this.#lists.get(toHex(post.baseDigest));
    const members = base === undefined ? null : await post.apply(base);
    if (members !== null) await this.remember(members);
  }

  /** The key post's member list: followed, or fetched and checked (`MembersChanging`). */
  async of(post: KeyPost): Promise<readonly string[]> {
    await this.#ready;
    const known = this.#lists.get(toHex(post.membersDigest));
    if (known !== undefined) return known;
    const current = new Set(await this.fetch());
    // Admissions do not rekey: users added since the post (its invitees, this client's
    // own user) may be in the group now. Only a list with the post's digest is taken,
    // so no candidate can substitute one.
    const late = new Set(post.invitees);
    const withoutLate = [...current].filter((u) => !late.has(u));
    for (const candidate of [[...current], withoutLate, withoutLate.filter((u) => u !== this.userId)]) {
      const members = sortedByCodePoint(candidate);
      const digest = await memberDigest(members);
      if (toHex(digest) === toHex(post.membersDigest)) {
        await this.remember(members);
        return Object.freeze(members);
      }
    }
    throw new MembersChanging("the group's members are not yet those of the key post");
  }
}
