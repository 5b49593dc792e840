/**
 * A device's saved context, as `veil.client.store`: its private keys, ids, the user's
 * master public key, the pins and, in approval mode, the user's private key.
 *
 * Browsers: `IndexedDbDeviceStore` (`./indexeddb.js`) keeps the context sealed under
 * a non-extractable AES-GCM CryptoKey. Node and tests: `MemoryDeviceStore`, holding the
 * context in this process only.
 */

import { PrivateKey, PublicKey } from "../crypto/pre.js";
import { type SigningKey, VerifyingKey } from "../crypto/signing.js";
import { b64decode, b64encode } from "../protocol/wire.js";

export type Mode = "split-trust" | "password" | "approval";
const MODES: readonly string[] = ["split-trust", "password", "approval"];
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** What a device keeps. Its secrets are in #private fields: never in JSON. */
export class DeviceContext {
  #deviceKey: PrivateKey;
  #signer: SigningKey;
  readonly #userKey: PrivateKey | null;

  constructor(
    readonly userId: string,
    readonly deviceId: string,
    readonly mode: Mode,
    deviceKey: PrivateKey,
    signer: SigningKey,
    readonly master: PublicKey,
    userKey: PrivateKey | null,
    readonly pins: Map<string, Uint8Array>,
  ) {
    this.#deviceKey = deviceKey;
    this.#signer = signer;
    this.#userKey = userKey;
  }

  get deviceKey(): PrivateKey {
    return this.#deviceKey;
  }

  get signer(): SigningKey {
    return this.#signer;
  }

  get userKey(): PrivateKey | null {
    return this.#userKey;
  }

  /** After a key rotation. */
  replaceKeys(deviceKey: PrivateKey, signer: SigningKey): void {
    this.#deviceKey = deviceKey;
    this.#signer = signer;
  }

  toJSON(): Record<string, string> {
    return { userId: this.userId, deviceId: this.deviceId, mode: this.mode };
  }

  /**
   * What a store seals: Python's `DeviceContext.to_bytes` (the same JSON keys), except
   * the signing key. A browser's is a non-extractable WebCrypto key whose bytes no
   * script can read, so the store keeps it as a CryptoKey beside the sealed bytes, and
   * these carry its public half (`signer_public`) to bind the two (`fromBytes`).
   */
  toSecretBytes(): Uint8Array {
    const pins: Record<string, string> = {};
    for (const [user, key] of this.pins) pins[user] = b64encode(key);
    return encoder.encode(
      JSON.stringify({
        user_id: this.userId,
        device_id: this.deviceId,
        mode: this.mode,
        device_key: b64encode(this.#deviceKey.toSecretBytes()),
        signer_public: b64encode(this.#signer.verifyingKey.bytes()),
        master: b64encode(this.master.bytes()),
        user_key: this.#userKey === null ? null : b64encode(this.#userKey.toSecretBytes()),
        pins,
      }),
    );
  }

  /** The context `toSecretBytes` made, with the signing key `signer` makes from the
   * public half it names (the caller checks that the private half matches). */
  static fromSecretBytes(data: Uint8Array, signer: (verifyingKey: VerifyingKey) => SigningKey): DeviceContext {
    // biome-ignore lint: parsed JSON, checked field by field below
    const d: any = JSON.parse(decoder.decode(data));
    const text = (name: string): string => {
      if (typeof d?.[name] !== "string") throw new TypeError(`device context: ${name} is not a string`);
      return d[name];
    };
    if (!MODES.includes(text("mode"))) throw new TypeError("device context: unknown mode");
    if (typeof d.pins !== "object" || d.pins === null) throw new TypeError("device context: pins is not an object");
    const pins = new Map<string, Uint8Array>();
    for (const [user, key] of Object.entries(d.pins)) {
      if (typeof key !== "string") throw new TypeError("device context: a pin is not a string");
      pins.set(user, b64decode(key));
    }
    return new DeviceContext(
      text("user_id"),
      text("device_id"),
      text("mode") as Mode,
      PrivateKey.fromSecretBytes(b64decode(text("device_key"))),
      signer(new VerifyingKey(b64decode(text("signer_public")))),
      PublicKey.fromBytes(b64decode(text("master"))),
      d.user_key === null ? null : PrivateKey.fromSecretBytes(b64decode(text("user_key"))),
      pins,
    );
  }
}

/** Where a device keeps its context (`veil.client.store.DeviceStore`). */
export interface DeviceStore {
  /** The saved context, or `null` when none was saved. */
  load(): Promise<DeviceContext | null>;
  save(context: DeviceContext): Promise<void>;
  /** Forget the context (and whatever key sealed it). */
  clear(): Promise<void>;
}

/** Nothing persisted: for tests, and for Node processes that register each run. */
export class MemoryDeviceStore implements DeviceStore {
  #context: DeviceContext | null = null;

  async load(): Promise<DeviceContext | null> {
    return this.#context;
  }

  async save(context: DeviceContext): Promise<void> {
    this.#context = context;
  }

  async clear(): Promise<void> {
    this.#context = null;
  }

  toJSON(): string {
    return "MemoryDeviceStore";
  }
}
