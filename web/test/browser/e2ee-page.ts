/**
 * A meeting participant whose camera and microphone go through Janus end-to-end
 * encrypted, for veil.webrtc.e2ee (`veil demo --browser`, tests/webrtc/test_janus_e2ee.py).
 *
 * The meeting is the browser SDK's `Meeting`, driven with web/tools/meeting-ops.ts's
 * commands (`page.ops.answer(...)`), as in meeting-page.ts. `publish` then does what a
 * platform does: `follow(meetingKeySource(meeting))` gives a `VeilMedia` that follows
 * the meeting's epochs; the page joins the VideoRoom with its sender number as display
 * name, every sender gets the media's encryption and every receiver its decryption,
 * bound to the sender number the publisher's display name gives (which only says whose
 * key to expect: the KID under the meeting's keys is the proof).
 *
 * `intrude` is the other side: a page outside the meeting, subscribed to the room,
 * holding a key of its own for the meeting's current epoch and publishing under a
 * member's sender number (what the SFU, or anyone who reached it, could try).
 *
 * The media worker is e2ee-worker.ts: the real one with a tap that digests each frame
 * before it is sealed (`plain`), for the comparison with Janus's recordings, and, once
 * `alterOnTheWay` names another member, alters some sealed frames as a malicious SFU
 * could (on-the-way.ts; what it did is `altered`).
 */

import { meetingKeySource } from "../../src/client/meeting/media-keys.js";
import type { MediaKeySource } from "../../src/media/source.js";
import { follow } from "../../src/media/source.js";
import { VeilMedia } from "../../src/media/veil-media.js";
import { type InboundCounts, inboundCounts, pictureSpread } from "../../src/sfu/probe.js";
import { type MediaKind, type Participant, VideoRoom } from "../../src/sfu/videoroom.js";
import type { MeetingOps } from "../../tools/meeting-ops.js";
import { CASES, type SFrameBench, inWorker } from "../../tools/sframe-bench.js";
import { type Alteration, noAlterations } from "./on-the-way.js";
import { type Services, participant } from "./meeting-page.js";

export interface PublishConfig {
  /** Janus's WebSocket API and the room. */
  readonly url: string;
  readonly room: number;
  /** A dishonest client: its media keeps the keys it holds when it leaves the meeting
   * (it ignores the meeting's key drop), and it stays subscribed to the room. */
  readonly keepKeys?: boolean;
}

export interface IntruderConfig {
  readonly url: string;
  readonly room: number;
  readonly meetingId: string;
  /** The member whose sender number it publishes under, and the epoch it claims. */
  readonly display: string;
  readonly epoch: string;
}

export interface RemoteReport {
  readonly feed: number;
  readonly display: string;
  readonly counts: InboundCounts;
  readonly spread: number;
}

const SHOWN = 3000; // frame times kept per remote video (over 3 min at 15 fps)
const WORKER = new URL("./e2ee-worker.js", import.meta.url);

/** A sender number in a display name; `undefined` for anything else. */
function senderOf(display: string): bigint | undefined {
  return /^[0-9]{1,20}$/.test(display) ? BigInt(display) : undefined;
}

export class E2eePage {
  readonly ops: MeetingOps;
  readonly errors: string[] = [];
  readonly hooked: string[] = [];
  readonly gone: string[] = [];
  plain: Record<string, string[]> = {};
  samples: string[] = [];
  altered: Record<Alteration, number> = noAlterations();
  media: VeilMedia | undefined;
  room: VideoRoom | undefined;
  readonly #alter = new BroadcastChannel("veil-e2ee-alter");
  readonly #videos = new Map<number, HTMLVideoElement>();
  /** When each remote video showed its newest frames (wall-clock ms), by feed. */
  readonly #shown = new Map<number, number[]>();

  constructor(services: Services) {
    this.ops = participant(services);
    const channel = new BroadcastChannel("veil-e2ee-plain");
    channel.onmessage = (
      event: MessageEvent<{ plain: Record<string, string[]>; samples: string[]; altered: Record<Alteration, number> }>,
    ) => {
      this.plain = event.data.plain;
      this.samples = event.data.samples;
      this.altered = event.data.altered;
    };
  }

  /** From now on some of this page's sealed frames are altered on their way, KIDs
   * rewritten to `other`'s sender number; `null` stops it. */
  alterOnTheWay(other: string | null): void {
    this.#alter.postMessage({ other });
  }

  /** Publish to the room and subscribe to everyone in it, every frame encrypted. */
  async publish(config: PublishConfig): Promise<void> {
    const meeting = this.ops.meeting;
    if (meeting === undefined) throw new Error("publish: join the meeting first");
    const honest = meetingKeySource(meeting);
    const source: MediaKeySource = config.keepKeys ? { ...honest, onLeave: () => () => {} } : honest;
    const { media } = follow(source, { workerUrl: WORKER, onError: (message) => this.errors.push(message) });
    this.media = media;
    await this.#join(config.url, config.room, meeting.senderNumber.toString(), media);
  }

  /** Outside the meeting: a random key for `epoch`, published under `display`'s number. */
  async intrude(config: IntruderConfig): Promise<void> {
    const sender = senderOf(config.display);
    if (sender === undefined) throw new Error("intrude: a sender number is needed");
    const media = new VeilMedia({ meetingId: config.meetingId, sender, workerUrl: WORKER, onError: (m) => this.errors.push(m) });
    media.setEpochKey(BigInt(config.epoch), crypto.getRandomValues(new Uint8Array(32)));
    this.media = media;
    await this.#join(config.url, config.room, config.display, media);
  }

  async #join(url: string, room: number, display: string, media: VeilMedia): Promise<void> {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240, frameRate: 15 } });
    const streams: Record<MediaKind, number> = { audio: 0, video: 1 };
    this.room = await VideoRoom.join({
      url,
      room,
      display,
      stream,
      onSender: (sender, kind) => {
        media.attachSender(sender, { kind, stream: streams[kind] });
        this.hooked.push(`send:${kind}`);
      },
      onReceiver: (receiver, kind, who: Participant) => {
        const sender = senderOf(who.display);
        media.attachReceiver(receiver, sender === undefined ? {} : { sender });
        this.hooked.push(`receive:${kind}:${who.feed}`);
      },
      onRemote: (remote) => this.#show(remote.participant, remote.stream),
      onRemoteGone: (who) => this.gone.push(who.display),
      onError: (error) => this.errors.push(String(error)),
    });
  }

  /** Every subscription's counters and picture spread, by the publisher's feed. */
  async remotes(): Promise<RemoteReport[]> {
    const reports: RemoteReport[] = [];
    for (const [feed, remote] of this.room?.remotes ?? []) {
      const video = this.#videos.get(feed);
      reports.push({ feed, display: remote.participant.display, counts: await inboundCounts(remote.pc), spread: video ? pictureSpread(video) : 0 });
    }
    return reports;
  }

  /** What this page's media worker counted, with epochs as decimal strings. */
  async mediaReport(): Promise<Record<string, unknown>> {
    if (this.media === undefined) return {};
    const report = await this.media.report();
    return { counters: report.counters, epoch: report.epoch?.toString() ?? null, firstOpened: report.firstOpened };
  }

  /** Frames the published video's encoder produced and the publisher sent, and audio packets. */
  async sent(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    const stats = await this.room?.publisher.getStats();
    stats?.forEach((stat: Record<string, unknown>) => {
      if (stat["type"] !== "outbound-rtp") return;
      const kind = String(stat["kind"]);
      for (const key of ["framesEncoded", "framesSent", "packetsSent"]) {
        const value = stat[key];
        if (typeof value === "number") out[`${kind}:${key}`] = value;
      }
    });
    return out;
  }

  /** The longest time (ms) between two frames each remote video showed within
   * [`from`, `to`] (wall-clock ms), window edges included, by the publisher's display. */
  frameGaps([from, to]: [number, number]): Record<string, number> {
    const gaps: Record<string, number> = {};
    for (const [feed, remote] of this.room?.remotes ?? []) {
      const times = [from, ...(this.#shown.get(feed) ?? []).filter((t) => t > from && t < to), to];
      let longest = 0;
      for (let i = 1; i < times.length; i++) longest = Math.max(longest, (times[i] ?? 0) - (times[i - 1] ?? 0));
      gaps[remote.participant.display] = longest;
    }
    return gaps;
  }

  feed(): number {
    return this.room?.self.feed ?? 0;
  }

  async leaveRoom(): Promise<void> {
    await this.room?.leave();
  }

  /** SFrame against bare AES-GCM per frame, in a worker: tools/sframe-bench.ts's cases
   * (an audio frame of 100 bytes, a video frame of 1,200), each the medians of `runs`. */
  async bench(runs: number): Promise<SFrameBench[]> {
    const results: SFrameBench[] = [];
    for (const { size, codec } of CASES) results.push(await inWorker(size, codec, runs));
    return results;
  }

  #show(who: Participant, stream: MediaStream): void {
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = false;
    video.srcObject = stream;
    video.title = who.display;
    video.dataset["feed"] = String(who.feed);
    document.body.append(video);
    this.#videos.set(who.feed, video);
    const shown: number[] = [];
    this.#shown.set(who.feed, shown);
    const onFrame = (now: number): void => {
      shown.push(performance.timeOrigin + now);
      if (shown.length > SHOWN) shown.shift();
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
}
