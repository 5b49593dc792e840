/**
 * `Device`: one device of one user, the root of the SDK, as `veil.client.device`.
 *
 * `Device.initialize` loads a saved context (and checks the device is still active),
 * or registers a new device in one of three modes:
 *
 * - `"split-trust"` (default): the escrow password is made from the key service's and
 *   the platform's shares, each fetched with a token for that service only;
 * - `"password"`: the escrow password is the user's own (`password` callback);
 * - `"approval"`: a new device shows an approval payload (`showApproval`) and waits
 *   until an existing device approves it (`approveDevice`); the escrow password is a
 *   PRE plaintext granted to the user as a document.
 */

import { bytesEqual, concat, owned } from "../crypto/encoding.js";
import { sealEscrow } from "../crypto/escrow.js";
import { Plaintext, PrivateKey, type PublicKey, type VerifiedEncryptedValue, decrypt, encrypt } from "../crypto/pre.js";
import { deriveKey } from "../crypto/schedule.js";
import { SigningKey, type VerifyingKey } from "../crypto/signing.js";
import { compareCodePoints } from "../protocol/json.js";
import { CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE, b64decode, b64encode, deviceId as deviceIdFor } from "../protocol/wire.js";
import { approvalPayload, parseApproval } from "./approval.js";
import { ConferenceClient } from "./conference.js";
import { Documents } from "./documents.js";
import { ApprovalPending, DeviceRevoked, NotFound } from "./errors.js";
import { type PasswordSource, type TokenSource, escrowPassword, openUserKey } from "./escrow.js";
import { Groups } from "./groups.js";
import type { Fetch } from "./http.js";
import { userIdFor } from "./ids.js";
import { type Clock, type DeviceSession, type KeyServerClient, KeyServerClient as Client, UserKeys, deviceKeysBody, systemClock } from "./keyserver.js";
import { KeyPins } from "./pins.js";
import type { Principal } from "./principal.js";
import { checkAuthor, signedOrigin } from "./provenance.js";
import { Board } from "./board.js";
import type { StateCallback } from "./link.js";
import type { WebSocketConstructor } from "./socket.js";
import { DeviceContext, type DeviceStore, type Mode } from "./store.js";

export type { PasswordSource, TokenSource } from "./escrow.js";
export type ApprovalDisplay = (payload: string) => Promise<void>;

const ESCROW_DOCUMENT_PREFIX = "veil-escrow.";
const encoder = new TextEncoder();

export function escrowDocumentId(userId: string): string {
  return ESCROW_DOCUMENT_PREFIX + userId;
}

export interface InitializeOptions {
  keyserverUrl: string;
  conferenceUrl: string;
  tokens: TokenSource;
  store: DeviceStore;
  mode?: Mode;
  password?: PasswordSource;
  showApproval?: ApprovalDisplay;
  /** Seconds to wait for an approval. */
  approvalTimeout?: number;
  keyserverAudience?: string;
  conferenceAudience?: string;
  clock?: Clock;
  fetch?: Fetch;
  /** The token claim that names the user, the one the services read
   * (`VEIL_JWT_USER_ID_CLAIM`): a new user's escrow is bound to the id made from it. */
  userIdClaim?: string;
  /** The WebSocket class for the board and media (default `globalThis.WebSocket`;
   * Node 20 has none: pass one, e.g. the `ws` package's). */
  WebSocket?: WebSocketConstructor;
}

type Options = { acceptChanges?: boolean };

export class Device implements Principal {
  readonly #context: DeviceContext;
  readonly #store: DeviceStore;
  readonly #tokens: TokenSource;
  readonly #password: PasswordSource | undefined;
  readonly #signers = new Map<string, [string, VerifyingKey]>();
  readonly #WebSocket: WebSocketConstructor | undefined;
  readonly pins: KeyPins;
  readonly groups: Groups;
  readonly documents: Documents;
  /** The meetings of this device not closed yet: its keys rotate when the last closes. */
  readonly openMeetings = new Set<object>();
  session: DeviceSession;

  private constructor(
    context: DeviceContext,
    readonly keyserver: KeyServerClient,
    readonly conference: ConferenceClient,
    tokens: TokenSource,
    store: DeviceStore,
    password: PasswordSource | undefined,
    readonly clock: Clock,
    WebSocket: WebSocketConstructor | undefined,
  ) {
    this.#WebSocket = WebSocket;
    this.#context = context;
    this.#store = store;
    this.#tokens = tokens;
    this.#password = password;
    this.session = keyserver.device(context.deviceId, context.signer);
    this.pins = new KeyPins(context.pins);
    this.groups = new Groups(this);
    this.documents = new Documents(this, this.groups);
  }

  get userId(): string {
    return this.#context.userId;
  }

  get deviceId(): string {
    return this.#context.deviceId;
  }

  get mode(): Mode {
    return this.#context.mode;
  }

  get masterPublicKey(): PublicKey {
    return this.#context.master;
  }

  get signer(): SigningKey {
    return this.#context.signer;
  }

  toJSON(): Record<string, string> {
    return { userId: this.userId, deviceId: this.deviceId };
  }

  static async initialize(o: InitializeOptions): Promise<Device> {
    const keyserverAudience = o.keyserverAudience ?? KEYSERVER_AUDIENCE;
    const conferenceAudience = o.conferenceAudience ?? CONFERENCE_AUDIENCE;
    if (keyserverAudience === conferenceAudience) {
      throw new RangeError(
        "the key service and the conference service need distinct token audiences: with one, either " +
          "could replay the user's token at the other and collect both split-trust shares",
      );
    }
    const mode = o.mode ?? "split-trust";
    if (mode === "password" && o.password === undefined) throw new RangeError("password mode needs a password callback");
    if (mode === "approval" && o.showApproval === undefined) throw new RangeError("approval mode needs a showApproval callback");
    const clock = o.clock ?? systemClock;
    const fetch = o.fetch ? { fetch: o.fetch } : {};
    const keyserver = new Client(o.keyserverUrl, { audience: keyserverAudience, clock, ...fetch });
    const conference = new ConferenceClient(o.conferenceUrl, { audience: conferenceAudience, ...fetch });
    let context = await o.store.load();
    let uncertified = false;
    if (context === null) {
      context = await register(keyserver, conference, o, mode);
      await o.store.save(context);
    } else {
      const record = await keyserver.deviceRecord(context.deviceId);
      if (!record.active) throw new DeviceRevoked(403, "device_revoked", "this device has been revoked");
      uncertified = record.certificate === null;
    }
    const device = new Device(context, keyserver, conference, o.tokens, o.store, o.password, clock, o.WebSocket);
    if (uncertified) await device.rotateKeys(); // registered before certificates: certified now
    return device;
  }

  async #save(): Promise<void> {
    await this.#store.save(this.#context);
  }

  /** Check `encoded` keys against the pin `entry` and pin them (saved at once). */
  async pin(entry: string, encoded: Uint8Array, { acceptChanges = false }: Options = {}): Promise<void> {
    if (this.pins.check(entry, encoded, { acceptChanges })) await this.#save();
  }

  /** A fresh JWT for the key service (its audience only). */
  keyserverToken(): Promise<string> {
    return this.#tokens(this.keyserver.audience);
  }

  /** A fresh JWT for the conference service (its audience only). */
  conferenceToken(): Promise<string> {
    return this.#tokens(this.conference.audience);
  }

  /** A room's board as this device sees it: its posts signed with this device's key,
   * everyone's checked against their certified keys (`signerOf`). Not connected yet. */
  board(roomId: string, { onState }: { onState?: StateCallback } = {}): Board {
    const WebSocket = this.#WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WebSocket === undefined) throw new TypeError("no WebSocket class: pass Device.initialize({ WebSocket })");
    return new Board({
      baseUrl: this.conference.http.baseUrl,
      roomId,
      deviceId: this.deviceId,
      signer: this.signer,
      token: () => this.conferenceToken(),
      lookup: (deviceId, fresh) => this.signerOf(deviceId, fresh),
      clock: this.clock,
      WebSocket,
      ...(onState ? { onState } : {}),
    });
  }

  // --- the user key ----------------------------------------------------------------------

  /** The user's private key: kept on the device in approval mode, else from the escrow. */
  async userKey(): Promise<PrivateKey> {
    if (this.#context.userKey !== null) return this.#context.userKey;
    const [, , escrow] = await this.keyserver.escrow(await this.keyserverToken());
    const secret = await escrowPassword(this.keyserver, this.conference, this.#tokens, this.mode, this.#password);
    return openUserKey(escrow, secret, this.userId);
  }

  // --- devices --------------------------------------------------------------------------

  devices(): Promise<Record<string, unknown>[]> {
    return this.session.devices();
  }

  /** Revoke one of this user's devices: it can decrypt nothing new. */
  revokeDevice(deviceId: string): Promise<void> {
    return this.session.revokeDevice(deviceId);
  }

  /** Approve a new device of this user from its approval payload; returns its id. */
  async approveDevice(payload: string): Promise<string> {
    const [userId, deviceKey, signingKey] = parseApproval(payload);
    if (userId !== this.userId) throw new RangeError("this approval payload is for another user's device");
    return this.keyserver.addDevice(await this.keyserverToken(), {
      userId: this.userId,
      userKey: await this.userKey(),
      master: this.masterPublicKey,
      deviceKey,
      signer: this.signer,
      deviceSigningKey: signingKey,
    });
  }

  /** Replace this device's PRE and signing keys (forward secrecy after a meeting). */
  async rotateKeys(): Promise<void> {
    const userKey = await this.userKey();
    const deviceKey = PrivateKey.generate();
    const signer = await SigningKey.generate();
    const token = await this.keyserverToken();
    const body = await deviceKeysBody(token, {
      userId: this.userId,
      deviceId: this.deviceId,
      userKey,
      master: this.masterPublicKey,
      deviceKey: deviceKey.publicKey,
      signer,
      now: Math.trunc(this.clock()),
    });
    await this.session.rotateKeys(token, body);
    this.#context.replaceKeys(deviceKey, signer);
    this.session = this.keyserver.device(this.deviceId, signer);
    await this.#save();
  }

  // --- keys of others ---------------------------------------------------------------------

  /** Master public keys, checked against (and added to) the pins. */
  async publicKeys(userIds: readonly string[], options: Options = {}): Promise<Map<string, PublicKey>> {
    const found = await this.userKeys(userIds, options);
    return new Map([...found].map(([user, keys]) => [user, keys.master]));
  }

  /** Master and identity keys, checked against (and added to) the pins:
   * `PinnedKeyChanged` if one differs, `NotFound` if a user has no keys. */
  async userKeys(userIds: readonly string[], { acceptChanges = false }: Options = {}): Promise<Map<string, UserKeys>> {
    const wanted = [...new Set(userIds)].sort(compareCodePoints);
    const found = await this.session.publicKeys(wanted);
    const missing = wanted.filter((user) => !found.has(user));
    if (missing.length) throw new NotFound(404, "not_found", `no keys for ${JSON.stringify(missing)}`);
    let changed = false;
    try {
      for (const [userId, keys] of found) {
        // A pin from before identity keys holds the master key alone: same user.
        const pinned = this.#context.pins.get(userId);
        const legacy = pinned !== undefined && bytesEqual(pinned, keys.master.bytes());
        changed = this.pins.check(userId, keys.pin(), { acceptChanges: acceptChanges || legacy }) || changed;
      }
    } finally {
      if (changed) await this.#save(); // keep the pins made before a changed key was found
    }
    return found;
  }

  /** Thirty digits two users see alike if each holds the other's genuine keys. */
  async safetyNumber(userId: string): Promise<string> {
    const keys = await this.userKeys([this.userId, userId]);
    const parts = [...new Set([this.userId, userId])]
      .map((user) => [encoder.encode(user), keys.get(user)!.pin()] as const)
      .sort(([a], [b]) => compareBytes(a, b));
    const data = concat([
      encoder.encode("veil/v1 safety number"),
      ...parts.flatMap(([user, pin]) => [Uint8Array.of(user.length >> 8, user.length & 0xff), user, pin]),
    ]);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", owned(data)));
    let n = 0n;
    for (const byte of digest.subarray(0, 13)) n = (n << 8n) | BigInt(byte);
    const digits = (n % 10n ** 30n).toString().padStart(30, "0");
    return digits.match(/.{5}/g)!.join(" ");
  }

  /** (user id, signing key) of an active device whose user's pinned identity key
   * certified it; cached unless `fresh`. */
  async signerOf(deviceId: string, fresh = false): Promise<[string, VerifyingKey]> {
    let cached = fresh ? undefined : this.#signers.get(deviceId);
    if (cached === undefined) {
      const record = await this.keyserver.deviceRecord(deviceId);
      if (!record.active) throw new DeviceRevoked(403, "device_revoked", `device ${JSON.stringify(deviceId)} is revoked`);
      const keys = (await this.userKeys([record.userId])).get(record.userId)!;
      await record.checkCertificate(keys.identity);
      cached = [record.userId, record.signingKey];
      this.#signers.set(deviceId, cached);
    }
    return cached;
  }

  /** Decrypt a value transformed to this device (descending from `origin`). */
  decrypt(value: VerifiedEncryptedValue, options: { origin?: VerifiedEncryptedValue } = {}): Promise<Plaintext> {
    return decrypt(value, this.#context.deviceKey, options);
  }
}

/** Python's bytes order (sorting tuples of encoded user ids). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

/** A new device: create the user if needed, get the user key, register the device. */
async function register(keyserver: KeyServerClient, conference: ConferenceClient, o: InitializeOptions, mode: Mode): Promise<DeviceContext> {
  const deviceKey = PrivateKey.generate();
  const signer = await SigningKey.generate();
  const token = await o.tokens(keyserver.audience);
  let found: [string, PublicKey, Uint8Array];
  try {
    found = await keyserver.escrow(token);
  } catch (error) {
    if (error instanceof NotFound) return newUser(keyserver, conference, token, o, mode, deviceKey, signer);
    throw error;
  }
  const [userId, master, escrow] = found;
  let userKey: PrivateKey;
  let deviceId: string;
  if (mode === "approval") {
    deviceId = await deviceIdFor(signer.verifyingKey.bytes());
    await o.showApproval!(approvalPayload(userId, deviceKey.publicKey, signer.verifyingKey));
    await waitForApproval(keyserver, deviceId, o.approvalTimeout ?? 300, userId, deviceKey.publicKey, signer.verifyingKey);
    userKey = await userKeyFromGrant(keyserver.device(deviceId, signer), deviceKey, escrow, userId);
  } else {
    const secret = await escrowPassword(keyserver, conference, o.tokens, mode, o.password);
    userKey = await openUserKey(escrow, secret, userId);
    deviceId = await keyserver.addDevice(await o.tokens(keyserver.audience), {
      userId,
      userKey,
      master,
      deviceKey: deviceKey.publicKey,
      signer,
    });
  }
  const pins = new Map([[userId, new UserKeys(master, userKey.publicKey).pin()]]); // its own, known
  return new DeviceContext(userId, deviceId, mode, deviceKey, signer, master, mode === "approval" ? userKey : null, pins);
}

/** Approval mode: the user key, from the escrow password granted to the user; the
 * grant's author is checked against the identity key of the user key it opens. */
async function userKeyFromGrant(session: DeviceSession, deviceKey: PrivateKey, escrow: Uint8Array, userId: string): Promise<PrivateKey> {
  const delivery = await session.documentKey(escrowDocumentId(userId));
  const what = "the escrow password's grant";
  const [origin, author] = await signedOrigin(delivery, [userId], what);
  const plaintext = await decrypt(delivery.transformed, deviceKey, { origin });
  const userKey = await openUserKey(escrow, await deriveKey(plaintext, "escrow password"), userId);
  await checkAuthor(author, userKey.publicKey, what);
  return userKey;
}

async function newUser(
  keyserver: KeyServerClient,
  conference: ConferenceClient,
  token: string,
  o: InitializeOptions,
  mode: Mode,
  deviceKey: PrivateKey,
  signer: SigningKey,
): Promise<DeviceContext> {
  // The escrow binds the user id, so learn it first, from the token, as the key
  // service will (a token without the claim fails here, before anything is created).
  const claim = o.userIdClaim ?? "sub";
  const userId = await userIdOf(token, claim);
  const userKey = PrivateKey.generate();
  const recovery = Plaintext.generate();
  const secret =
    mode === "approval"
      ? await deriveKey(recovery, "escrow password")
      : await escrowPassword(keyserver, conference, o.tokens, mode, o.password);
  const escrow = await sealEscrow(userKey.toSecretBytes(), secret, encoder.encode(userId));
  const [createdId, master] = await keyserver.createUser(token, userKey.publicKey, escrow);
  if (createdId !== userId) {
    throw new RangeError(
      `the key service named the new user ${JSON.stringify(createdId)}, but its escrow was bound to ` +
        `${JSON.stringify(userId)}, the id the token's ${JSON.stringify(claim)} claim makes: give ` +
        "Device.initialize the userIdClaim the services read (VEIL_JWT_USER_ID_CLAIM)",
    );
  }
  const deviceId = await keyserver.addDevice(await o.tokens(keyserver.audience), {
    userId: createdId,
    userKey,
    master,
    deviceKey: deviceKey.publicKey,
    signer,
  });
  if (mode === "approval") {
    const encrypted = await encrypt(recovery, master, signer);
    const grant = { grantee_kind: "user", grantee_id: createdId, encrypted_key: b64encode(encrypted.bytes()) };
    await keyserver.device(deviceId, signer).createDocument(escrowDocumentId(createdId), "other", [grant]);
  }
  const pins = new Map([[createdId, new UserKeys(master, userKey.publicKey).pin()]]);
  return new DeviceContext(createdId, deviceId, mode, deviceKey, signer, master, mode === "approval" ? userKey : null, pins);
}

/** The user id a JWT's `claim` makes, read without verifying (the key service
 * verifies it), mapped as the services map it. */
export async function userIdOf(token: string, claim = "sub"): Promise<string> {
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b64decode((token.split(".")[1] ?? "").replace(/=+$/, ""))));
  } catch {
    throw new RangeError("the token is not a JWT");
  }
  if (typeof payload !== "object" || payload === null || !(claim in payload)) {
    throw new RangeError(`the token has no ${JSON.stringify(claim)} claim`);
  }
  const value = (payload as Record<string, unknown>)[claim];
  if (typeof value !== "string" || !value) throw new RangeError(`the token's ${JSON.stringify(claim)} claim is not a non-empty string`);
  return userIdFor(value);
}

async function waitForApproval(
  keyserver: KeyServerClient,
  deviceId: string,
  timeout: number,
  userId: string,
  deviceKey: PublicKey,
  signingKey: VerifyingKey,
): Promise<void> {
  const deadline = performance.now() + timeout * 1000;
  for (;;) {
    try {
      const record = await keyserver.deviceRecord(deviceId);
      const mine = record.userId === userId && record.publicKey.equals(deviceKey) && record.signingKey.equals(signingKey);
      if (!mine) throw new ApprovalPending("a device of this id was registered with other keys");
      if (record.active) return;
      throw new DeviceRevoked(403, "device_revoked", "this device was revoked before use");
    } catch (error) {
      if (!(error instanceof NotFound)) throw error;
    }
    if (performance.now() >= deadline) throw new ApprovalPending("no existing device approved this device in time");
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}


