/**
 * `IndexedDbDeviceStore`: a browser device's context in IndexedDB, sealed as
 * `veil.client.store` seals it, under a key no script can read.
 *
 * Python's store seals the context (`DeviceContext.to_bytes`) with AES-256-GCM as a
 * document envelope whose id, `veil-device-context-v1`, is its AAD, under a 32-byte
 * key the application keeps in the platform's keychain. Here the key is a
 * non-extractable WebCrypto AES-256-GCM key made on the first save, and IndexedDB is
 * the keychain: it stores CryptoKeys as they are (structured clone), so the key's
 * bytes are never in reach of a script, this SDK's included. The same goes for the
 * device's Ed25519 signing key, which is kept beside the sealed bytes as its
 * CryptoKey; the sealed context names its public half, and `load` checks the pair.
 *
 * What this protects: a script on the page (an injected one, a compromised
 * dependency) can use the keys while it runs there but cannot copy them out, and the
 * stored record alone (a backup, an export of site data) opens nothing. It does not
 * protect against someone who reads the browser profile's files, where the browser
 * keeps key material itself; and a restored older record of the same store opens (as
 * an older file does in Python): rollback is not detected.
 *
 * Errors: `DecryptionError` when the sealed bytes were altered, the storage key is
 * another one, or the signing key was swapped; `StorageKeyMissing` when the sealed
 * context is there and its key is not; the encoding's `DecodeError`s for bytes that
 * are no envelope at all.
 *
 * Layout: database `veil-device-store` (version 1), object stores `keys` (name ->
 * storage CryptoKey) and `contexts` (name -> { sealed, signer }), both written in one
 * transaction so a key and the bytes it sealed are replaced together.
 */

import { openDocumentUnder, sealDocumentUnder } from "../crypto/aead.js";
import { DecryptionError, InvalidSignature } from "../crypto/errors.js";
import { SigningKey } from "../crypto/signing.js";
import { StorageKeyMissing } from "./errors.js";
import { DeviceContext, type DeviceStore } from "./store.js";

/** `veil.client.store._DOCUMENT_ID`: the envelope's id, so its AAD. */
export const DOCUMENT_ID = "veil-device-context-v1";
export const DATABASE = "veil-device-store";
const VERSION = 1;
const KEYS = "keys";
const CONTEXTS = "contexts";
const PROBE = new TextEncoder().encode("veil-device-store: signing key check");

interface Saved {
  sealed: Uint8Array;
  signer: CryptoKey;
}

export class IndexedDbDeviceStore implements DeviceStore {
  readonly #factory: IDBFactory;
  readonly database: string;

  /** `name`: which device context of this origin (one per user, say); `database`: the
   * IndexedDB database holding them. */
  constructor(
    readonly name = "default",
    { database = DATABASE, indexedDB = globalThis.indexedDB }: { database?: string; indexedDB?: IDBFactory } = {},
  ) {
    if (indexedDB === undefined) throw new TypeError("IndexedDB is not available here: use MemoryDeviceStore");
    this.#factory = indexedDB;
    this.database = database;
  }

  async load(): Promise<DeviceContext | null> {
    const [key, saved] = await this.#transaction("readonly", (keys, contexts) =>
      Promise.all([request<unknown>(keys.get(this.name)), request<unknown>(contexts.get(this.name))]),
    );
    if (saved === undefined) return null;
    if (!isStorageKey(key)) {
      throw new StorageKeyMissing("the saved device context's storage key is gone: set this device up again");
    }
    if (!isSaved(saved)) throw new DecryptionError();
    const plaintext = await openDocumentUnder(key, DOCUMENT_ID, saved.sealed);
    let context: DeviceContext;
    try {
      context = DeviceContext.fromSecretBytes(plaintext, (verifyingKey) =>
        SigningKey.fromCryptoKey(saved.signer, verifyingKey),
      );
    } catch {
      throw new DecryptionError(); // sealed by this store's key, so not from this store
    }
    // The signing key is stored outside the seal: it must be the pair the seal names.
    try {
      await context.signer.verifyingKey.verify(await context.signer.sign(PROBE), PROBE);
    } catch (error) {
      if (error instanceof InvalidSignature) throw new DecryptionError();
      throw error;
    }
    return context;
  }

  async save(context: DeviceContext): Promise<void> {
    const found = await this.#transaction("readonly", (keys) => request<unknown>(keys.get(this.name)));
    // WebCrypto runs outside the transaction (one would commit while awaiting it).
    const key = isStorageKey(found)
      ? found
      : await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
    const saved: Saved = {
      sealed: await sealDocumentUnder(key, DOCUMENT_ID, context.toSecretBytes()),
      signer: context.signer.cryptoKey(),
    };
    await this.#transaction("readwrite", (keys, contexts) =>
      Promise.all([request(keys.put(key, this.name)), request(contexts.put(saved, this.name))]),
    );
  }

  async clear(): Promise<void> {
    await this.#transaction("readwrite", (keys, contexts) =>
      Promise.all([request(keys.delete(this.name)), request(contexts.delete(this.name))]),
    );
  }

  toJSON(): string {
    return `IndexedDbDeviceStore(${this.name})`;
  }

  async #open(): Promise<IDBDatabase> {
    const opening = this.#factory.open(this.database, VERSION);
    opening.onupgradeneeded = () => {
      const db = opening.result;
      for (const store of [KEYS, CONTEXTS]) if (!db.objectStoreNames.contains(store)) db.createObjectStore(store);
    };
    return request(opening);
  }

  /** `work` on both object stores in one transaction; resolves once it committed. */
  async #transaction<T>(
    mode: IDBTransactionMode,
    work: (keys: IDBObjectStore, contexts: IDBObjectStore) => Promise<T>,
  ): Promise<T> {
    const db = await this.#open();
    try {
      const transaction = db.transaction([KEYS, CONTEXTS], mode);
      const done = new Promise<void>((resolve, reject) => {
        transaction.oncomplete = () => resolve();
        transaction.onabort = () => reject(transaction.error ?? new Error("IndexedDB transaction aborted"));
        transaction.onerror = () => reject(transaction.error ?? new Error("IndexedDB transaction failed"));
      });
      done.catch(() => {}); // awaited below; a failed request rejects `work` first
      const result = await work(transaction.objectStore(KEYS), transaction.objectStore(CONTEXTS));
      await done;
      return result;
    } finally {
      db.close();
    }
  }
}

function request<T>(req: IDBRequest): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result as T);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB request failed"));
  });
}

function isStorageKey(key: unknown): key is CryptoKey {
  return (
    typeof CryptoKey !== "undefined" &&
    key instanceof CryptoKey &&
    key.type === "secret" &&
    key.algorithm.name === "AES-GCM" &&
    (key.algorithm as AesKeyAlgorithm).length === 256 &&
    !key.extractable
  );
}

function isSaved(value: unknown): value is Saved {
  const saved = value as Saved;
  return typeof value === "object" && value !== null && saved.sealed instanceof Uint8Array && saved.signer instanceof CryptoKey;
}
