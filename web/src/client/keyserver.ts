/**
 * A client for the key service API (`/v1`), as `veil.client.keyserver`:
 * `KeyServerClient` makes the JWT-authenticated and public calls (share, user,
 * escrow, device creation, device records); `DeviceSession` makes the calls a
 * registered device signs (`Veil-*` headers over the decoded path, the canonical
 * query and the body's digest).
 */

import { sealDocument } from "../crypto/aead.js";
import { DecodeError, InvalidSignature } from "../crypto/errors.js";
import {
  EncryptedValue,
  type PrivateKey,
  Plaintext,
  PublicKey,
  type VerifiedEncryptedValue,
  encrypt,
  generateTransformKey,
} from "../crypto/pre.js";
import { deriveKey } from "../crypto/schedule.js";
import * as schnorr from "../crypto/schnorr.js";
import { type SigningKey, VerifyingKey } from "../crypto/signing.js";
import {
  KEYSERVER_AUDIENCE,
  b64decode,
  b64encode,
  deviceCertificateMessage,
  deviceId as deviceIdFor,
  deviceProofMessage,
  groupProofMessage,
  pathSegment,
  signRequest,
  signedPath,
} from "../protocol/wire.js";
import { UncertifiedDevice, UntrustedKey } from "./errors.js";
import { type Fetch, HttpService } from "./http.js";

/** The service's limit of users per public-key lookup. */
export const LOOKUP_BATCH = 500;

const encoder = new TextEncoder();

/** Seconds since the epoch, as Python's `time.time`. */
export type Clock = () => number;
export const systemClock: Clock = () => Date.now() / 1000;

// The service's answers, read loosely: each field is checked where it is used.
type Answer = Record<string, unknown>;

function str(value: unknown, what: string): string {
  if (typeof value !== "string") throw new DecodeError(`the key service's ${what} is not a string`);
  return value;
}

function bytesOf(value: unknown, what: string): Uint8Array {
  return b64decode(str(value, what));
}

/** `veil.protocol.certify_device`: the user key's Schnorr proof over the device's keys. */
export async function certifyDevice(
  userKey: PrivateKey,
  userId: string,
  deviceId: string,
  publicKey: Uint8Array,
  signingKey: Uint8Array,
): Promise<Uint8Array> {
  const message = deviceCertificateMessage(userId, deviceId, publicKey, signingKey);
  return (await schnorr.sign(message, userKey)).bytes();
}

/** `veil.protocol.check_device_certificate`: `InvalidSignature` unless it verifies. */
export async function checkDeviceCertificate(
  certificate: Uint8Array,
  identity: PublicKey,
  userId: string,
  deviceId: string,
  publicKey: Uint8Array,
  signingKey: Uint8Array,
): Promise<void> {
  const message = deviceCertificateMessage(userId, deviceId, publicKey, signingKey);
  await schnorr.verify(schnorr.SchnorrSignature.fromBytes(certificate), message, identity);
}

// --- request bodies ------------------------------------------------------------------
// What a client proves for each key-making call, built in one place.

export interface DeviceKeysOptions {
  userId: string;
  userKey: PrivateKey;
  master: PublicKey;
  deviceKey: PublicKey;
  signer: SigningKey;
  now: number;
  deviceSigningKey?: VerifyingKey;
  deviceId?: string;
}

/** Body of `POST /v1/devices` (and key rotation), as Python's `device_keys_body`. */
export async function deviceKeysBody(token: string, o: DeviceKeysOptions): Promise<Record<string, unknown>> {
  const signingKey = (o.deviceSigningKey ?? o.signer.verifyingKey).bytes();
  const id = o.deviceId ?? (await deviceIdFor(signingKey));
  const transformKey = await generateTransformKey(o.userKey, o.deviceKey, o.signer);
  const message = deviceProofMessage(o.now, transformKey.bytes(), token, o.master.bytes(), signingKey);
  const proof = await schnorr.sign(message, o.userKey, { publicKey: o.master });
  const certificate = await certifyDevice(o.userKey, o.userId, id, o.deviceKey.bytes(), signingKey);
  return {
    public_key: b64encode(o.deviceKey.bytes()),
    signing_key: b64encode(signingKey),
    transform_key: b64encode(transformKey.bytes()),
    timestamp: o.now,
    proof: b64encode(proof.bytes()),
    certificate: b64encode(certificate),
  };
}

/** The group key sealed under a fresh plaintext's "group key" derivation. */
async function sealedGroupKey(groupId: string, groupKey: PrivateKey, plaintext: Plaintext): Promise<Uint8Array> {
  return sealDocument(await deriveKey(plaintext, "group key"), groupId, groupKey.toSecretBytes());
}

/** Body of `POST /v1/groups`, as Python's `create_group_body`. */
export async function createGroupBody(
  groupId: string,
  groupKey: PrivateKey,
  o: { userId: string; master: PublicKey; signer: SigningKey; now: number; plaintext?: Plaintext },
): Promise<Record<string, unknown>> {
  const plaintext = o.plaintext ?? Plaintext.generate();
  const message = groupProofMessage("create", groupId, o.userId, o.now, groupKey.publicKey.bytes());
  return {
    group_id: groupId,
    public_key: b64encode(groupKey.publicKey.bytes()),
    encrypted_key: b64encode((await encrypt(plaintext, o.master, o.signer)).bytes()),
    key_envelope: b64encode(await sealedGroupKey(groupId, groupKey, plaintext)),
    timestamp: o.now,
    proof: b64encode((await schnorr.sign(message, groupKey)).bytes()),
  };
}

/** Body of `POST /v1/groups/{id}/members`, as Python's `add_member_body`. */
export async function addMemberBody(
  groupId: string,
  groupKey: PrivateKey,
  o: { userId: string; master: PublicKey; signer: SigningKey; now: number },
): Promise<Record<string, unknown>> {
  const transformKey = await generateTransformKey(groupKey, o.master, o.signer);
  const message = groupProofMessage("add-member", groupId, o.userId, o.now, transformKey.bytes());
  return {
    user_id: o.userId,
    transform_key: b64encode(transformKey.bytes()),
    timestamp: o.now,
    proof: b64encode((await schnorr.sign(message, groupKey)).bytes()),
  };
}

/** A device as the key service publishes it. */
export class DeviceRecord {
  constructor(
    readonly deviceId: string,
    readonly userId: string,
    readonly publicKey: PublicKey,
    readonly signingKey: VerifyingKey,
    readonly active: boolean,
    /** The user's certificate of these keys (`null`: clients do not trust its keys). */
    readonly certificate: Uint8Array | null,
  ) {}

  static fromJson(data: Answer): DeviceRecord {
    const certificate = data["certificate"] ? bytesOf(data["certificate"], "certificate") : null;
    return new DeviceRecord(
      str(data["device_id"], "device id"),
      str(data["user_id"], "user id"),
      PublicKey.fromBytes(bytesOf(data["public_key"], "public key")),
      new VerifyingKey(bytesOf(data["signing_key"], "signing key")),
      data["status"] === "active",
      certificate,
    );
  }

  /** `UncertifiedDevice` unless `identity` (the user's pinned identity key) certified it. */
  async checkCertificate(identity: PublicKey): Promise<void> {
    try {
      if (this.certificate === null) throw new InvalidSignature();
      await checkDeviceCertificate(
        this.certificate,
        identity,
        this.userId,
        this.deviceId,
        this.publicKey.bytes(),
        this.signingKey.bytes(),
      );
    } catch (error) {
      if (error instanceof InvalidSignature || error instanceof DecodeError) {
        throw new UncertifiedDevice(`device ${JSON.stringify(this.deviceId)} is not certified by ${JSON.stringify(this.userId)}'s key`);
      }
      throw error;
    }
  }
}

/** A user's public keys: `master` (what is encrypted to the user) and `identity`
 * (the client part of it, held by the user alone: it certifies the user's devices). */
export class UserKeys {
  constructor(
    readonly master: PublicKey,
    readonly identity: PublicKey,
  ) {}

  /** What a device pins for the user: both keys. */
  pin(): Uint8Array {
    const master = this.master.bytes();
    const identity = this.identity.bytes();
    const out = new Uint8Array(master.length + identity.length);
    out.set(master);
    out.set(identity, master.length);
    return out;
  }
}

/** A key the key service delivers, unchecked but for the transform signer's signature
 * (`provenance.vouchedOrigin` checks the rest before anything is decrypted). */
export interface KeyDelivery {
  transformed: VerifiedEncryptedValue;
  origin: EncryptedValue;
  author: DeviceRecord | null;
  owner: string | null;
}

export interface KeyServerOptions {
  audience?: string;
  clock?: Clock;
  fetch?: Fetch;
}

export class KeyServerClient {
  readonly http: HttpService;
  readonly audience: string;
  readonly clock: Clock;
  #transformSigner: Promise<VerifyingKey> | undefined;

  constructor(baseUrl: string, options: KeyServerOptions = {}) {
    this.http = new HttpService(baseUrl, options.fetch);
    this.audience = options.audience ?? KEYSERVER_AUDIENCE;
    this.clock = options.clock ?? systemClock;
  }

  #bearer(token: string): Record<string, string> {
    return { authorization: `Bearer ${token}` };
  }

  #json(token: string, body: unknown): { headers: Record<string, string>; body: Uint8Array } {
    return {
      headers: { ...this.#bearer(token), "content-type": "application/json" },
      body: encoder.encode(JSON.stringify(body)),
    };
  }

  /** The key service's share of this user's escrow password. */
  async share(token: string): Promise<Uint8Array> {
    const data = (await this.http.send({ method: "POST", path: "/v1/users/me/share", headers: this.#bearer(token) })) as Answer;
    return bytesOf(data["share"], "share");
  }

  /** Register the token's user; returns its id and augmented master public key. */
  async createUser(token: string, publicKey: PublicKey, escrow: Uint8Array): Promise<[string, PublicKey]> {
    const body = { public_key: b64encode(publicKey.bytes()), escrow: b64encode(escrow) };
    const data = (await this.http.send({ method: "POST", path: "/v1/users", ...this.#json(token, body) })) as Answer;
    return [str(data["user_id"], "user id"), PublicKey.fromBytes(bytesOf(data["master_public_key"], "master key"))];
  }

  /** (user id, master public key, escrow blob) of the token's user. */
  async escrow(token: string): Promise<[string, PublicKey, Uint8Array]> {
    const data = (await this.http.send({ method: "GET", path: "/v1/users/me/escrow", headers: this.#bearer(token) })) as Answer;
    const master = PublicKey.fromBytes(bytesOf(data["master_public_key"], "master key"));
    return [str(data["user_id"], "user id"), master, bytesOf(data["escrow"], "escrow")];
  }

  /** Register a device for the token's user (needs the user's private key). */
  async addDevice(token: string, o: Omit<DeviceKeysOptions, "now" | "deviceId">): Promise<string> {
    const body = await deviceKeysBody(token, { ...o, now: Math.trunc(this.clock()) });
    const data = (await this.http.send({ method: "POST", path: "/v1/devices", ...this.#json(token, body) })) as Answer;
    return str(data["device_id"], "device id");
  }

  async deviceRecord(deviceId: string): Promise<DeviceRecord> {
    const data = (await this.http.send({ method: "GET", path: `/v1/devices/${pathSegment(deviceId)}` })) as Answer;
    if (data["device_id"] !== deviceId) {
      throw new UncertifiedDevice(`the key service answered for a device other than ${JSON.stringify(deviceId)}`);
    }
    return DeviceRecord.fromJson(data);
  }

  async groupPublicKey(groupId: string): Promise<PublicKey> {
    const data = (await this.http.send({ method: "GET", path: `/v1/groups/${pathSegment(groupId)}/public-key` })) as Answer;
    return PublicKey.fromBytes(bytesOf(data["public_key"], "group key"));
  }

  /** The key every transformed value must be signed with: asked once, then kept. */
  transformSigner(): Promise<VerifyingKey> {
    this.#transformSigner ??= this.http.send({ method: "GET", path: "/v1/service" }).then(
      (data) => new VerifyingKey(bytesOf((data as Answer)["transform_signer"], "transform signer")),
    );
    this.#transformSigner.catch(() => (this.#transformSigner = undefined));
    return this.#transformSigner;
  }

  /** A transformed value verified against the transform signer (`UntrustedKey`). */
  async transformed(raw: Uint8Array): Promise<VerifiedEncryptedValue> {
    const value = EncryptedValue.fromBytes(raw);
    try {
      return await value.verify({ signer: await this.transformSigner() });
    } catch (error) {
      if (error instanceof InvalidSignature) {
        throw new UntrustedKey("a transformed value not signed by the key service's transform signer");
      }
      throw error;
    }
  }

  device(deviceId: string, signer: SigningKey): DeviceSession {
    return new DeviceSession(this, deviceId, signer);
  }

  toJSON(): Record<string, string> {
    return { keyserver: this.http.baseUrl, audience: this.audience };
  }
}

/** Calls signed by one registered device. */
export class DeviceSession {
  readonly #signer: SigningKey;

  constructor(
    readonly client: KeyServerClient,
    readonly deviceId: string,
    signer: SigningKey,
  ) {
    this.#signer = signer;
  }

  /** The `Veil-*` headers that authenticate one request, made without sending it (the
   * conference service forwards such a `GET .../membership` as a capability). */
  signedHeaders(method: string, path: string, body: Uint8Array = new Uint8Array(), query = ""): Promise<Record<string, string>> {
    const now = Math.trunc(this.client.clock());
    return signRequest(this.#signer, this.deviceId, method, signedPath(path), query, body, now);
  }

  async request(
    method: string,
    path: string,
    body?: unknown,
    { query = "", headers = {} }: { query?: string; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    const raw = body === undefined ? new Uint8Array() : encoder.encode(JSON.stringify(body));
    const signed = await this.signedHeaders(method, path, raw, query);
    const request = {
      method,
      path: query ? `${path}?${query}` : path,
      headers: { ...signed, "content-type": "application/json", ...headers },
      ...(raw.length > 0 ? { body: raw } : {}),
    };
    return (await this.client.http.send(request)) as Answer;
  }

  // --- users and devices -------------------------------------------------------------

  /** Users' master and identity keys; users without keys are left out. */
  async publicKeys(userIds: readonly string[]): Promise<Map<string, UserKeys>> {
    const found = new Map<string, UserKeys>();
    for (let start = 0; start < userIds.length; start += LOOKUP_BATCH) {
      const batch = userIds.slice(start, start + LOOKUP_BATCH);
      const data = await this.request("POST", "/v1/public-keys", { user_ids: batch });
      const masters = data["public_keys"] as Record<string, unknown>;
      const identities = data["identity_keys"] as Record<string, unknown>;
      for (const [user, master] of Object.entries(masters)) {
        found.set(
          user,
          new UserKeys(
            PublicKey.fromBytes(bytesOf(master, "master key")),
            PublicKey.fromBytes(bytesOf(identities[user], "identity key")),
          ),
        );
      }
    }
    return found;
  }

  async devices(): Promise<Answer[]> {
    return (await this.request("GET", "/v1/devices"))["devices"] as Answer[];
  }

  async revokeDevice(deviceId: string): Promise<void> {
    await this.request("DELETE", `/v1/devices/${pathSegment(deviceId)}`);
  }

  async rotateKeys(token: string, body: Record<string, unknown>): Promise<void> {
    await this.request("PUT", `/v1/devices/${pathSegment(this.deviceId)}/keys`, body, {
      headers: { authorization: `Bearer ${token}` },
    });
  }

  // --- groups --------------------------------------------------------------------------

  /** Create a group whose key is `groupKey`; the caller becomes its admin. */
  async createGroup(groupId: string, groupKey: PrivateKey, o: { userId: string; master: PublicKey }): Promise<void> {
    const now = Math.trunc(this.client.clock());
    await this.request("POST", "/v1/groups", await createGroupBody(groupId, groupKey, { ...o, signer: this.#signer, now }));
  }

  group(groupId: string): Promise<Answer> {
    return this.request("GET", `/v1/groups/${pathSegment(groupId)}`);
  }

  groupDigest(groupId: string): Promise<Answer> {
    return this.request("GET", `/v1/groups/${pathSegment(groupId)}/digest`);
  }

  async groups(): Promise<string[]> {
    return (await this.request("GET", "/v1/groups"))["groups"] as string[];
  }

  /** For an admin: the group key's delivery (unchecked) and its envelope. */
  async groupPrivateKey(groupId: string): Promise<[KeyDelivery, Uint8Array]> {
    const data = await this.request("GET", `/v1/groups/${pathSegment(groupId)}/private-key`);
    return [await this.#delivery(data), bytesOf(data["key_envelope"], "key envelope")];
  }

  async deleteGroup(groupId: string): Promise<void> {
    await this.request("DELETE", `/v1/groups/${pathSegment(groupId)}`);
  }

  async addMember(groupId: string, groupKey: PrivateKey, o: { userId: string; master: PublicKey }): Promise<void> {
    const now = Math.trunc(this.client.clock());
    const body = await addMemberBody(groupId, groupKey, { ...o, signer: this.#signer, now });
    await this.request("POST", `/v1/groups/${pathSegment(groupId)}/members`, body);
  }

  async removeMember(groupId: string, groupKey: PrivateKey, userId: string): Promise<void> {
    const now = Math.trunc(this.client.clock());
    const proof = b64encode((await schnorr.sign(groupProofMessage("remove-member", groupId, userId, now), groupKey)).bytes());
    await this.request("DELETE", `/v1/groups/${pathSegment(groupId)}/members/${pathSegment(userId)}`, undefined, {
      query: `timestamp=${now}&proof=${proof}`,
    });
  }

  /** Make `userId` an admin: the group key sealed under a plaintext encrypted to them. */
  async addAdmin(groupId: string, groupKey: PrivateKey, o: { userId: string; master: PublicKey }): Promise<void> {
    const plaintext = Plaintext.generate();
    const body = {
      user_id: o.userId,
      encrypted_key: b64encode((await encrypt(plaintext, o.master, this.#signer)).bytes()),
      key_envelope: b64encode(await sealedGroupKey(groupId, groupKey, plaintext)),
    };
    await this.request("POST", `/v1/groups/${pathSegment(groupId)}/admins`, body);
  }

  async removeAdmin(groupId: string, userId: string): Promise<void> {
    await this.request("DELETE", `/v1/groups/${pathSegment(groupId)}/admins/${pathSegment(userId)}`);
  }

  // --- transforms and documents ---------------------------------------------------------

  /** `encrypted` transformed to this device (through `groupId`), signer checked. */
  async transform(encrypted: Uint8Array, groupId?: string): Promise<VerifiedEncryptedValue> {
    const body: Record<string, string> = { encrypted_key: b64encode(encrypted) };
    if (groupId !== undefined) body["group_id"] = groupId;
    const data = await this.request("POST", "/v1/transform", body);
    return this.client.transformed(bytesOf(data["encrypted_key"], "transformed key"));
  }

  async createDocument(documentId: string, kind: string, grants: Record<string, string>[]): Promise<void> {
    await this.request("POST", "/v1/documents", { document_id: documentId, kind, grants });
  }

  async grant(documentId: string, grant: Record<string, string>): Promise<void> {
    await this.request("POST", `/v1/documents/${pathSegment(documentId)}/grants`, grant);
  }

  async revokeGrant(documentId: string, kind: string, granteeId: string): Promise<void> {
    await this.request(
      "DELETE",
      `/v1/documents/${pathSegment(documentId)}/grants/${pathSegment(kind)}/${pathSegment(granteeId)}`,
    );
  }

  /** The document's key transformed to this device, with origin, author and owner. */
  async documentKey(documentId: string): Promise<KeyDelivery> {
    return this.#delivery(await this.request("GET", `/v1/documents/${pathSegment(documentId)}/key`));
  }

  async #delivery(data: Answer): Promise<KeyDelivery> {
    if (!("origin" in data) || !("author" in data)) {
      throw new UntrustedKey("the key service showed no origin for this key");
    }
    const author = data["author"];
    return {
      transformed: await this.client.transformed(bytesOf(data["encrypted_key"], "encrypted key")),
      origin: EncryptedValue.fromBytes(bytesOf(data["origin"], "origin")),
      author: author === null ? null : DeviceRecord.fromJson(author as Answer),
      owner: "owner" in data ? str(data["owner"], "owner") : null,
    };
  }

  toJSON(): Record<string, string> {
    return { deviceId: this.deviceId };
  }
}


