/**
 * Pieces of an encrypted call in one page, for the media tests (and the SFU harness):
 * the fake camera and microphone, a one-way call between two peer connections of the
 * same page (direct, no SFU) with `VeilMedia` on both ends, and what the tests read
 * back: decoded video frames and audio samples from `getStats`, and whether the remote
 * video shows a picture (a canvas sample that is not one flat colour).
 */

import type { VeilMedia } from "../../src/media/veil-media.js";

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The fake devices (`--use-fake-device-for-media-stream`): a moving test card and a beep. */
export function camera(): Promise<MediaStream> {
  return navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240, frameRate: 30 }, audio: true });
}

/** A test session key: 32 bytes filled with `n`. */
export function sessionKey(n: number): Uint8Array {
  return new Uint8Array(32).fill(n);
}

export interface Call {
  sending: RTCPeerConnection;
  receiving: RTCPeerConnection;
  video: HTMLVideoElement;
  close(): void;
}

/** Offer/answer and ICE between two peer connections of this page. */
export async function connect(a: RTCPeerConnection, b: RTCPeerConnection): Promise<void> {
  a.onicecandidate = (e) => void (e.candidate && b.addIceCandidate(e.candidate));
  b.onicecandidate = (e) => void (e.candidate && a.addIceCandidate(e.candidate));
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription as RTCSessionDescription);
  await b.setLocalDescription();
  await a.setRemoteDescription(b.localDescription as RTCSessionDescription);
}

export interface CallOptions {
  /** The sender number the receiver binds the tracks to (as the roster says). */
  bind?: bigint;
  /** Peer connections for legacy encoded streams (`createEncodedStreams`). */
  legacy?: boolean;
  /** The video codec to negotiate first (`video/VP9`); VP8 by default. */
  videoCodec?: string;
}

/** `stream`'s tracks from `from` to `to`, each side's frames through its `VeilMedia`. */
export async function oneWay(from: VeilMedia, to: VeilMedia, stream: MediaStream, options: CallOptions = {}): Promise<Call> {
  const config = (options.legacy ? { encodedInsertableStreams: true } : {}) as RTCConfiguration;
  const sending = new RTCPeerConnection(config);
  const receiving = new RTCPeerConnection(config);
  for (const track of stream.getTracks()) {
    // Audio is stream 0 and video stream 1 of the sending participant, on every connection.
    from.attachSender(sending.addTrack(track, stream), { stream: track.kind === "audio" ? 0 : 1 });
  }
  const wanted = options.videoCodec?.toLowerCase();
  if (wanted !== undefined) {
    const codecs = RTCRtpSender.getCapabilities("video")?.codecs ?? [];
    const first = codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
    for (const t of sending.getTransceivers()) {
      if (t.sender.track?.kind === "video") t.setCodecPreferences([...first, ...codecs.filter((c) => !first.includes(c))]);
    }
  }
  const video = document.createElement("video");
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  document.body.append(video);
  const remote = new MediaStream();
  receiving.ontrack = (event) => {
    to.attachReceiver(event.receiver, options.bind === undefined ? {} : { sender: options.bind });
    remote.addTrack(event.track);
    video.srcObject = remote;
  };
  await connect(sending, receiving);
  return {
    sending,
    receiving,
    video,
    close() {
      sending.close();
      receiving.close();
      video.remove();
    },
  };
}

export interface Received {
  /** The video codec received (`video/VP8`). */
  videoCodec?: string;
  framesDecoded: number;
  framesReceived: number;
  /** Audio samples that came from decoded frames, not concealment. */
  audioDecoded: number;
  /** Retransmitted RTP packets received (after NACKs): a single-packet frame that is
   * retransmitted after it was delivered reaches the transform twice. */
  retransmitted: number;
  nacks: number;
}

export async function received(pc: RTCPeerConnection): Promise<Received> {
  const out: Received = { framesDecoded: 0, framesReceived: 0, audioDecoded: 0, retransmitted: 0, nacks: 0 };
  const stats = await pc.getStats();
  stats.forEach((r: Record<string, number | string>) => {
    if (r.type !== "inbound-rtp") return;
    if (r.kind === "video") {
      const codec = (stats as unknown as Map<string, { mimeType?: string }>).get(String(r.codecId));
      if (codec?.mimeType) out.videoCodec = codec.mimeType;
      out.framesDecoded += Number(r.framesDecoded ?? 0);
      out.retransmitted += Number(r.retransmittedPacketsReceived ?? 0);
      out.nacks += Number(r.nackCount ?? 0);
      out.framesReceived += Number(r.framesReceived ?? 0);
    } else if (r.kind === "audio") {
      out.audioDecoded += Number(r.totalSamplesReceived ?? 0) - Number(r.concealedSamples ?? 0);
    }
  });
  return out;
}

/** A `MediaKeySource` the test drives by hand (as a Meeting would on each epoch and on
 * leaving): `install(epoch, key)`, `leave()`. */
export class ManualKeySource {
  readonly #keyListeners = new Set<(epoch: bigint, key: Uint8Array) => void>();
  readonly #leaveListeners = new Set<() => void>();
  #current: [bigint, Uint8Array] | undefined;

  constructor(
    readonly meetingId: string,
    readonly sender: bigint,
  ) {}

  onSessionKey(listener: (epoch: bigint, key: Uint8Array) => void): () => void {
    this.#keyListeners.add(listener);
    if (this.#current) listener(...this.#current);
    return () => this.#keyListeners.delete(listener);
  }

  onLeave(listener: () => void): () => void {
    this.#leaveListeners.add(listener);
    return () => this.#leaveListeners.delete(listener);
  }

  install(epoch: bigint, key: Uint8Array): void {
    this.#current = [epoch, key];
    for (const listener of this.#keyListeners) listener(epoch, key);
  }

  leave(): void {
    this.#current = undefined;
    for (const listener of this.#leaveListeners) listener();
  }
}
