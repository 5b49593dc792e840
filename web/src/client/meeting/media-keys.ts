/**
 * A `Meeting` as the media layer's `MediaKeySource`, so a page needs one line:
 *
 *     const { media, stop } = follow(meetingKeySource(meeting));
 *
 * It reads only the Meeting's public API: `meetingId`, `senderNumber`, `epoch`,
 * `mediaKeys(epoch)` (a copy of the session key), `EpochChanged` events and
 * `onKeysDropped` (a leave, end, close or removal). The media layer stays free of the
 * client: it sees the structural `MediaKeySource` only.
 */

import type { MediaKeySource } from "../../media/source.js";
import type { MeetingEvent } from "./events.js";

/** What the adapter needs of a Meeting (the `Meeting` class has it). */
export interface MeetingKeys {
  readonly meetingId: string;
  readonly senderNumber: bigint;
  readonly epoch: bigint | null;
  mediaKeys(epoch: bigint): Uint8Array | null;
  readonly events: { on(callback: (event: MeetingEvent) => void): () => void };
  onKeysDropped(listener: () => void): () => void;
}

export function meetingKeySource(meeting: MeetingKeys): MediaKeySource {
  return {
    meetingId: meeting.meetingId,
    sender: meeting.senderNumber,
    onSessionKey(listener) {
      // Subscribed first, then the key held now: an epoch installed in between is
      // handed over twice at worst (the media layer ignores a repeat), never missed.
      const off = meeting.events.on((event) => {
        if (event.type !== "epoch-changed") return;
        const key = meeting.mediaKeys(event.epoch);
        if (key !== null) listener(event.epoch, key);
      });
      const epoch = meeting.epoch;
      const key = epoch === null ? null : meeting.mediaKeys(epoch);
      if (epoch !== null && key !== null) listener(epoch, key);
      return off;
    },
    onLeave(listener) {
      return meeting.onKeysDropped(listener);
    },
  };
}
