/**
 * What a meeting tells its application, as `veil.client.meeting.events`: typed events,
 * to callbacks and async iterators.
 *
 * `meeting.events.subscribe()` gives an async iterator of every event from then on
 * (each subscriber has its own unbounded queue: read it, or stop iterating with
 * `break`/`return()`); `meeting.events.on(callback)` calls a plain function for each
 * event (it must not block; what it throws is logged, never thrown into the meeting).
 * Nothing a meeting does fails silently: a failure of background work (a rekey that
 * could not be posted, a removal the key service refused, a malformed or untrusted
 * post) is a `MeetingFailure` event.
 *
 * Each event has a `type` (for a `switch`) and is also a class (for `instanceof`).
 */

import { ChatMessage } from "./chat.js";
import { Queue } from "./tasks.js";

export class ParticipantJoined {
  readonly type = "participant-joined";
  constructor(
    readonly sender: bigint,
    readonly userId: string,
    readonly deviceId: string,
  ) {}
}

export class ParticipantLeft {
  readonly type = "participant-left";
  constructor(
    readonly sender: bigint,
    readonly userId: string,
    readonly deviceId: string,
  ) {}
}

/** This device holds a new epoch's key (or, two admins having raced, the key every
 * client agreed on for the epoch); `meeting.mediaKeys(epoch)` gives it to the media layer. */
export class EpochChanged {
  readonly type = "epoch-changed";
  constructor(
    readonly epoch: bigint,
    readonly members: readonly string[],
    readonly securityCode: string,
    /** The device id of the key's poster, who manages the meeting from then on. */
    readonly manager: string,
  ) {}
}

/** A chat message read from the board: a `ChatMessage`, typed as an event. */
export class ChatReceived extends ChatMessage {
  readonly type = "chat-received";
}

export class ConnectionChanged {
  readonly type = "connection-changed";
  constructor(
    readonly channel: "board" | "media",
    /** "connected", "reconnecting", "failed" or "closed". */
    readonly state: string,
  ) {}
}

/** The manager's heartbeat named a new deputy, or a deputy took over. */
export class ManagementChanged {
  readonly type = "management-changed";
  constructor(
    readonly manager: string,
    readonly deputy: bigint | null,
  ) {}
}

/** Something the meeting did in the background failed, or a post was refused. */
export class MeetingFailure {
  readonly type = "failure";
  constructor(readonly error: unknown) {}
}

/** This device is no longer in the meeting's group: it holds no key any more. */
export class Removed {
  readonly type = "removed";
}

/** The meeting ended: every key is gone. */
export class Ended {
  readonly type = "ended";
}

export type MeetingEvent =
  | ParticipantJoined
  | ParticipantLeft
  | EpochChanged
  | ChatReceived
  | ConnectionChanged
  | ManagementChanged
  | MeetingFailure
  | Removed
  | Ended;

const HISTORY = 256;

export class EventStream {
  readonly #queues = new Set<Queue<MeetingEvent>>();
  readonly #callbacks: ((event: MeetingEvent) => void)[] = [];
  /** The newest failures (also sent as `MeetingFailure` events), for a look back. */
  readonly failures: unknown[] = [];

  on(callback: (event: MeetingEvent) => void): () => void {
    this.#callbacks.push(callback);
    return () => {
      const at = this.#callbacks.indexOf(callback);
      if (at >= 0) this.#callbacks.splice(at, 1);
    };
  }

  subscribe(): AsyncIterableIterator<MeetingEvent> {
    const queue = new Queue<MeetingEvent>();
    this.#queues.add(queue);
    const queues = this.#queues;
    const iterator: AsyncIterableIterator<MeetingEvent> = {
      async next() {
        if (!queues.has(queue)) return { done: true, value: undefined };
        return { done: false, value: await queue.get() };
      },
      async return() {
        queues.delete(queue);
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  emit(event: MeetingEvent): void {
    if (event instanceof MeetingFailure) {
      this.failures.push(event.error);
      if (this.failures.length > HISTORY) this.failures.shift();
    }
    for (const queue of this.#queues) queue.put(event);
    for (const callback of [...this.#callbacks]) {
      try {
        callback(event);
      } catch (error) {
        // The application's bug must not stop the meeting.
        console.error("a meeting event callback raised:", error);
      }
    }
  }

  fail(error: unknown): void {
    this.emit(new MeetingFailure(error));
  }

  toJSON(): string {
    return "EventStream";
  }
}
