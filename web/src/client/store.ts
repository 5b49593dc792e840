/**
 * A device's saved context, as `veil.client.store`: its private keys, ids, the user's
 * master public key, the pins and, in approval mode, the user's private key.
 *
 * Browsers: `IndexedDbDeviceStore` is not written yet (it would keep the context
 * sealed under a non-extractable AES-GCM CryptoKey stored beside it). Node and tests:
 * `MemoryDeviceStore`, as Python's, holding the context in this process only.
 */

import type { PrivateKey, PublicKey } from "../crypto/pre.js";
import type { SigningKey } from "../crypto/signing.js";

export type Mode = "split-trust" | "password" | "approval";

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
}

export interface DeviceStore {
  load(): Promise<DeviceContext | null>;
  save(context: DeviceContext): Promise<void>;
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

  toJSON(): string {
    return "MemoryDeviceStore";
  }
}
