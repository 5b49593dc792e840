/**
 * What a receiver actually got, for checks and measurements: the inbound-rtp counters
 * of a subscription (frames decoded, audio samples received and concealed), and how
 * far a rendered video frame is from uniform (a decoder that outputs nothing, or a
 * frozen black or grey frame, scores near zero; a camera picture does not).
 */

export interface VideoCounts {
  readonly framesReceived: number;
  readonly framesDecoded: number;
  readonly keyFramesDecoded: number;
  readonly frameWidth: number;
  readonly frameHeight: number;
  readonly bytesReceived: number;
  readonly codec: string;
}

export interface AudioCounts {
  readonly packetsReceived: number;
  readonly totalSamplesReceived: number;
  readonly concealedSamples: number;
  readonly silentConcealedSamples: number;
  readonly audioLevel: number;
  readonly bytesReceived: number;
  readonly codec: string;
}

export interface InboundCounts {
  readonly video?: VideoCounts;
  readonly audio?: AudioCounts;
}

type Stat = Record<string, unknown>;

function num(stat: Stat, key: string): number {
  const value = stat[key];
  return typeof value === "number" ? value : 0;
}

/** The inbound-rtp counters of a peer connection, by kind (the first stream of each). */
export async function inboundCounts(pc: RTCPeerConnection): Promise<InboundCounts> {
  const report = await pc.getStats();
  const stats: Stat[] = [];
  report.forEach((stat: Stat) => stats.push(stat));
  const codec = (stat: Stat): string => {
    const found = stats.find((candidate) => candidate.id === stat.codecId);
    return found === undefined ? "" : String(found.mimeType);
  };
  let video: VideoCounts | undefined;
  let audio: AudioCounts | undefined;
  for (const stat of stats) {
    if (stat.type !== "inbound-rtp") continue;
    if (stat.kind === "video" && video === undefined) {
      video = {
        framesReceived: num(stat, "framesReceived"),
        framesDecoded: num(stat, "framesDecoded"),
        keyFramesDecoded: num(stat, "keyFramesDecoded"),
        frameWidth: num(stat, "frameWidth"),
        frameHeight: num(stat, "frameHeight"),
        bytesReceived: num(stat, "bytesReceived"),
        codec: codec(stat),
      };
    } else if (stat.kind === "audio" && audio === undefined) {
      audio = {
        packetsReceived: num(stat, "packetsReceived"),
        totalSamplesReceived: num(stat, "totalSamplesReceived"),
        concealedSamples: num(stat, "concealedSamples"),
        silentConcealedSamples: num(stat, "silentConcealedSamples"),
        audioLevel: num(stat, "audioLevel"),
        bytesReceived: num(stat, "bytesReceived"),
        codec: codec(stat),
      };
    }
  }
  return { ...(video === undefined ? {} : { video }), ...(audio === undefined ? {} : { audio }) };
}

/** The addresses a peer connection's media flows between (its selected ICE pair). */
export interface MediaPath {
  readonly local: string;
  readonly remote: string;
}

/** The selected candidate pair's local and remote addresses, once ICE has chosen one. */
export async function mediaPath(pc: RTCPeerConnection): Promise<MediaPath | undefined> {
  const stats = new Map<string, Stat>();
  (await pc.getStats()).forEach((stat: Stat) => stats.set(String(stat.id), stat));
  for (const stat of stats.values()) {
    if (stat.type !== "transport" || typeof stat.selectedCandidatePairId !== "string") continue;
    const pair = stats.get(stat.selectedCandidatePairId);
    const local = stats.get(String(pair?.localCandidateId));
    const remote = stats.get(String(pair?.remoteCandidateId));
    if (local === undefined || remote === undefined) return undefined;
    return { local: String(local.address), remote: String(remote.address) };
  }
  return undefined;
}

/**
 * The standard deviation of the luma of `video`'s current frame, sampled at 64x48
 * (0 to about 128): near 0 for a uniform frame or a video that has rendered nothing.
 */
export function pictureSpread(video: HTMLVideoElement): number {
  if (video.videoWidth === 0 || video.videoHeight === 0) return 0;
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 48;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  if (context === null) return 0;
  context.drawImage(video, 0, 0, canvas.width, canvas.height);
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  let sum = 0;
  let squares = 0;
  const pixels = data.length / 4;
  for (let i = 0; i < data.length; i += 4) {
    // ITU-R BT.601 luma.
    const luma = 0.299 * (data[i] ?? 0) + 0.587 * (data[i + 1] ?? 0) + 0.114 * (data[i + 2] ?? 0);
    sum += luma;
    squares += luma * luma;
  }
  const mean = sum / pixels;
  return Math.sqrt(Math.max(0, squares / pixels - mean * mean));
}
