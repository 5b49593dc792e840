/**
 * A participant in a Janus VideoRoom: publishes one local stream (audio and video) on
 * one peer connection and subscribes to every other publisher on a peer connection
 * each, as Janus's own demos do (one subscriber handle per feed keeps each
 * renegotiation independent).
 *
 * Frame encryption plugs in through two hooks, called once per `RTCRtpSender` and
 * per `RTCRtpReceiver` with the media kind and the participant whose media it
 * carries: the sender's before the offer is made and the receiver's before the answer
 * is (a hook may return a promise; it is awaited), so a transform
 * (`RTCRtpScriptTransform`, or `createEncodedStreams` with `encodedInsertableStreams`
 * in `rtcConfiguration`) is in place before the first frame. Without hooks the media
 * is plain (DTLS-SRTP to the SFU only).
 *
 * Not covered: a publisher renegotiating (adding or removing tracks after it
 * published), simulcast, ICE restarts.
 */

import { type Json, JanusError, type JanusHandle, JanusSession } from "./janus.js";

export const VIDEOROOM = "janus.plugin.videoroom";

/**
 * A publisher in the room: Janus's feed id and the display name it joined with. Both
 * come from the SFU as each publisher chose them: good for finding whose keys to
 * expect, never proof of who sent a frame (the SFrame KID, under keys from the board,
 * is that).
 */
export interface Participant {
  readonly feed: number;
  readonly display: string;
}

export type MediaKind = "audio" | "video";

/** Called once per sender (the participant is this one) or receiver (the publisher). */
export type EncodedTransformHook<T extends RTCRtpSender | RTCRtpReceiver> = (
  endpoint: T,
  kind: MediaKind,
  participant: Participant,
) => void | Promise<void>;

export interface RoomOptions {
  /** Janus's WebSocket API, e.g. `ws://127.0.0.1:8188`. */
  readonly url: string;
  readonly room: number;
  readonly display: string;
  /** What to publish: its audio and video tracks. */
  readonly stream: MediaStream;
  readonly onSender?: EncodedTransformHook<RTCRtpSender>;
  readonly onReceiver?: EncodedTransformHook<RTCRtpReceiver>;
  /** Merged into every peer connection's configuration (no ICE servers by default). */
  readonly rtcConfiguration?: RTCConfiguration;
  /** A remote participant's media arrived (its stream gains tracks as they come). */
  readonly onRemote?: (remote: RemoteFeed) => void;
  /** A remote participant stopped publishing or left. */
  readonly onRemoteGone?: (participant: Participant) => void;
  /** A subscription to a publisher who arrived after the join failed. */
  readonly onError?: (error: unknown) => void;
}

/** One subscription: a publisher's media on its own peer connection. */
export interface RemoteFeed {
  readonly participant: Participant;
  readonly pc: RTCPeerConnection;
  readonly stream: MediaStream;
}

interface Publisher {
  readonly id: number;
  readonly display?: string;
}

export class VideoRoom {
  readonly #options: RoomOptions;
  readonly #session: JanusSession;
  readonly #handle: JanusHandle;
  readonly #remotes = new Map<number, RemoteFeed & { handle: JanusHandle }>();
  readonly #claimed = new Set<number>();
  #privateId = 0;
  #self: Participant = { feed: 0, display: "" };
  readonly publisher: RTCPeerConnection;

  private constructor(options: RoomOptions, session: JanusSession, handle: JanusHandle) {
    this.#options = options;
    this.#session = session;
    this.#handle = handle;
    this.publisher = this.#peerConnection(handle);
  }

  /** Joins the room, publishes `options.stream`, and subscribes to everyone else. */
  static async join(options: RoomOptions): Promise<VideoRoom> {
    const session = await JanusSession.connect(options.url);
    let room: VideoRoom | undefined;
    try {
      room = new VideoRoom(options, session, await session.attach(VIDEOROOM));
      await room.#enter();
      return room;
    } catch (error) {
      // No peer connection, session or keepalive outlives a failed join.
      await (room === undefined ? session.destroy() : room.leave());
      throw error;
    }
  }

  async #enter(): Promise<void> {
    const options = this.#options;
    const handle = this.#handle;
    const early: Publisher[] = [];
    let joined = false;
    // Publishers announced while this join is still in flight are subscribed after it.
    handle.onEvent((message) => (joined ? this.#event(message) : this.#queue(message, early)));
    const { data } = await handle.send({
      request: "join",
      ptype: "publisher",
      room: options.room,
      display: options.display,
    });
    this.#self = { feed: Number(data.id), display: options.display };
    this.#privateId = Number(data.private_id);
    joined = true;
    await this.#publish();
    const present = [...((data.publishers as Publisher[] | undefined) ?? []), ...early];
    await Promise.all(present.map((publisher) => this.#subscribe(publisher)));
  }

  get self(): Participant {
    return this.#self;
  }

  /** The subscriptions, by feed id. */
  get remotes(): ReadonlyMap<number, RemoteFeed> {
    return this.#remotes;
  }

  /** Leaves: closes every peer connection and ends the Janus session. */
  async leave(): Promise<void> {
    for (const remote of this.#remotes.values()) remote.pc.close();
    this.#remotes.clear();
    this.publisher.close();
    await this.#handle.send({ request: "leave" }).catch(() => undefined);
    await this.#session.destroy();
  }

  async #publish(): Promise<void> {
    for (const track of this.#options.stream.getTracks()) {
      const transceiver = this.publisher.addTransceiver(track, {
        direction: "sendonly",
        streams: [this.#options.stream],
      });
      await this.#options.onSender?.(transceiver.sender, track.kind as MediaKind, this.#self);
    }
    const offer = await this.publisher.createOffer();
    await this.publisher.setLocalDescription(offer);
    const { jsep } = await this.#handle.send({ request: "publish", display: this.#options.display }, offer);
    if (jsep === undefined) throw new JanusError(0, "Janus answered the publish without an SDP");
    await this.publisher.setRemoteDescription(jsep);
  }

  async #subscribe(publisher: Publisher): Promise<void> {
    // Checked and claimed before any await: the join's list and an event may both name
    // the same publisher.
    if (publisher.id === this.#self.feed || this.#claimed.has(publisher.id)) return;
    this.#claimed.add(publisher.id);
    const participant = { feed: publisher.id, display: publisher.display ?? "" };
    const handle = await this.#session.attach(VIDEOROOM);
    const pc = this.#peerConnection(handle);
    const stream = new MediaStream();
    pc.addEventListener("track", (event) => stream.addTrack(event.track));
    const remote = { participant, pc, stream, handle };
    this.#remotes.set(publisher.id, remote);
    const { jsep } = await handle.send({
      request: "join",
      ptype: "subscriber",
      room: this.#options.room,
      streams: [{ feed: publisher.id }],
      private_id: this.#privateId,
    });
    if (jsep === undefined) throw new JanusError(0, `Janus offered no SDP for feed ${publisher.id}`);
    await pc.setRemoteDescription(jsep);
    for (const transceiver of pc.getTransceivers()) {
      const { receiver } = transceiver;
      await this.#options.onReceiver?.(receiver, receiver.track.kind as MediaKind, participant);
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await handle.send({ request: "start" }, answer);
    this.#options.onRemote?.(remote);
  }

  #peerConnection(handle: JanusHandle): RTCPeerConnection {
    const pc = new RTCPeerConnection({ iceServers: [], ...this.#options.rtcConfiguration });
    pc.addEventListener("icecandidate", (event) => {
      handle.trickle(event.candidate).catch(() => undefined);
    });
    return pc;
  }

  #queue(message: Json, early: Publisher[]): void {
    early.push(...publishersIn(message));
  }

  #event(message: Json): void {
    for (const publisher of publishersIn(message)) {
      this.#subscribe(publisher).catch((error: unknown) => this.#options.onError?.(error));
    }
    const data = pluginData(message);
    for (const gone of [data.unpublished, data.leaving]) {
      if (typeof gone === "number") this.#drop(gone);
    }
  }

  #drop(feed: number): void {
    this.#claimed.delete(feed);
    const remote = this.#remotes.get(feed);
    if (remote === undefined) return;
    this.#remotes.delete(feed);
    remote.pc.close();
    remote.handle.detach().catch(() => undefined);
    this.#options.onRemoteGone?.(remote.participant);
  }
}

function pluginData(message: Json): Json {
  return ((message.plugindata as Json | undefined)?.data ?? {}) as Json;
}

function publishersIn(message: Json): Publisher[] {
  const publishers = pluginData(message).publishers;
  return Array.isArray(publishers) ? (publishers as Publisher[]) : [];
}
