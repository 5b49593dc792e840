/**
 * Who is in the meeting, as the board says, as `veil.client.meeting.roster`: each
 * join's signed sender number.
 *
 * A join is an `announce` post: the device names the sender number it drew (the SFrame
 * KIDs of its frames carry it). A number announced once is never accepted from another
 * device, and a device is in a meeting once: its newer announce replaces its older one
 * (a client that crashed and joined again). A `leave` counts only from the device that
 * announced the number.
 */

import { UntrustedPost } from "../errors.js";

export class Participant {
  constructor(
    readonly sender: bigint,
    readonly userId: string,
    readonly deviceId: string,
    /** The board position of its announce (earlier joins come first). */
    readonly seq: number,
  ) {}
}

export class Roster {
  readonly #present = new Map<bigint, Participant>();
  readonly #byDevice = new Map<string, bigint>();
  readonly #announced = new Map<bigint, string>(); // sender -> device, for every join ever
  readonly #departed = new Set<string>(); // users who left and have no participant now

  /** Add a join; `UntrustedPost` if another device announced `sender` first. Returns the
   * participant (a device's earlier join, if any, is replaced). */
  announce(sender: bigint, userId: string, deviceId: string, seq: number): Participant {
    const owner = this.#announced.get(sender) ?? deviceId;
    if (owner !== deviceId) throw new UntrustedPost("a sender number another device announced first");
    this.#announced.set(sender, deviceId);
    const earlier = this.#byDevice.get(deviceId);
    if (earlier !== undefined) this.#present.delete(earlier);
    const joined = new Participant(sender, userId, deviceId, seq);
    this.#present.set(sender, joined);
    this.#byDevice.set(deviceId, sender);
    this.#departed.delete(userId);
    return joined;
  }

  /** Remove the join `sender` if `deviceId` announced it; the participant, or `null`
   * (not present, or a leave for another device's join: ignored). */
  leave(sender: bigint, deviceId: string): Participant | null {
    const participant = this.#present.get(sender);
    if (participant === undefined || participant.deviceId !== deviceId) return null;
    this.#present.delete(sender);
    this.#byDevice.delete(deviceId);
    if (!this.hasUser(participant.userId)) this.#departed.add(participant.userId);
    return participant;
  }

  /** The sender number of a present device (what its frames' KIDs must name). */
  senderOf(deviceId: string): bigint | null {
    return this.#byDevice.get(deviceId) ?? null;
  }

  get(sender: bigint): Participant | null {
    return this.#present.get(sender) ?? null;
  }

  hasUser(userId: string): boolean {
    for (const p of this.#present.values()) if (p.userId === userId) return true;
    return false;
  }

  /** Users who left the meeting and have no device in it now (until `settled`). */
  departed(): Set<string> {
    return new Set(this.#departed);
  }

  /** These departures were applied (removed from the group, or never in it). */
  settled(userIds: Iterable<string>): void {
    for (const userId of userIds) this.#departed.delete(userId);
  }

  /** Present participants, earliest join first. */
  participants(): Participant[] {
    return [...this.#present.values()].sort((a, b) => a.seq - b.seq);
  }

  get size(): number {
    return this.#present.size;
  }

  toJSON(): { sender: string; userId: string; deviceId: string }[] {
    return this.participants().map((p) => ({ sender: p.sender.toString(), userId: p.userId, deviceId: p.deviceId }));
  }
}
