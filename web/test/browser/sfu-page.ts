/**
 * A plain publish/subscribe page on a Janus VideoRoom, for tests/webrtc: publishes
 * the (fake) camera and microphone, shows every other participant's video, and
 * answers the test's questions (decode counters, how non-uniform each remote picture
 * is, the timings of its join). With `countFrames`, every sender and receiver gets a
 * pass-through `RTCRtpScriptTransform` through the room's hooks, which counts the
 * encoded frames it sees: the seam the SFrame layer plugs into. `dropFrom` names a
 * participant whose received frames that transform counts and then discards (what a
 * receiver without the right key would do), so a test can see decoding stop.
 */

import { type InboundCounts, type MediaPath, inboundCounts, mediaPath, pictureSpread } from "../../src/sfu/probe.js";
import { type MediaKind, type Participant, VideoRoom } from "../../src/sfu/videoroom.js";

export interface PageConfig {
  readonly url: string;
  readonly room: number;
  readonly display: string;
  readonly countFrames: boolean;
  readonly dropFrom?: string;
}

export interface RemoteReport {
  readonly display: string;
  readonly counts: InboundCounts;
  readonly spread: number;
  readonly path: MediaPath | null;
}

export class SfuPage {
  readonly timings: Record<string, number> = {};
  readonly hooked: string[] = [];
  readonly frames: Record<string, number> = {};
  /** The digests of the frames each sender's transform sent (see count-worker.ts). */
  readonly sent: Record<string, string[]> = {};
  readonly gone: string[] = [];
  readonly errors: string[] = [];
  readonly #videos = new Map<string, HTMLVideoElement>();
  room: VideoRoom | undefined;
  #started = 0;

  async start(config: PageConfig): Promise<void> {
    this.#started = performance.now();
    const started = this.#started;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: 320, height: 240, frameRate: 15 },
    });
    this.timings.media_ms = performance.now() - started;
    const worker = config.countFrames ? this.#countingWorker() : undefined;
    const hook = (direction: string) => (endpoint: RTCRtpSender | RTCRtpReceiver, kind: MediaKind, who: Participant) => {
      const name = `${direction}:${kind}:${who.display}`;
      this.hooked.push(name);
      const drop = direction === "receive" && who.display === config.dropFrom;
      const digest = direction === "send";
      if (worker !== undefined) endpoint.transform = new RTCRtpScriptTransform(worker, { name, drop, digest });
    };
    this.room = await VideoRoom.join({
      url: config.url,
      room: config.room,
      display: config.display,
      stream,
      onSender: hook("send"),
      onReceiver: hook("receive"),
      onRemote: (remote) => this.#show(remote.participant.display, remote.stream),
      onRemoteGone: (participant) => this.gone.push(participant.display),
      onError: (error) => this.errors.push(String(error)),
    });
    this.timings.join_ms = performance.now() - started;
  }

  /** Every subscription's counters and picture spread, by the publisher's display name. */
  async report(): Promise<RemoteReport[]> {
    const reports: RemoteReport[] = [];
    for (const remote of this.room?.remotes.values() ?? []) {
      const { display } = remote.participant;
      const video = this.#videos.get(display);
      reports.push({
        display,
        counts: await inboundCounts(remote.pc),
        spread: video === undefined ? 0 : pictureSpread(video),
        path: (await mediaPath(remote.pc)) ?? null,
      });
    }
    return reports;
  }

  async leave(): Promise<void> {
    await this.room?.leave();
  }

  /** The addresses the published media flows between. */
  async publishedPath(): Promise<MediaPath | null> {
    return this.room === undefined ? null : ((await mediaPath(this.room.publisher)) ?? null);
  }

  #show(display: string, stream: MediaStream): void {
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.srcObject = stream;
    video.title = display;
    document.body.append(video);
    this.#videos.set(display, video);
    video.requestVideoFrameCallback(() => {
      this.timings[`first_frame_ms:${display}`] ??= performance.now() - this.#started;
    });
  }

  #countingWorker(): Worker {
    const worker = new Worker("/dist/test/browser/count-worker.js", { type: "module" });
    type Report = { counts: Record<string, number>; sent: Record<string, string[]> };
    worker.addEventListener("message", (event: MessageEvent<Report>) => {
      Object.assign(this.frames, event.data.counts);
      Object.assign(this.sent, event.data.sent);
    });
    return worker;
  }
}
