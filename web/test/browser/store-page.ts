/**
 * `IndexedDbDeviceStore` in a browser page: tests/web_sdk/test_device_store.py calls
 * these through Playwright, across page reloads, and reads plain JSON back. The
 * `tamper` cases change the stored record with IndexedDB's own API, as anything else
 * on the origin could, and report the name of what `load` then throws.
 */

import { toHex } from "../../src/crypto/encoding.js";
import { PrivateKey } from "../../src/crypto/pre.js";
import { SigningKey, VerifyingKey } from "../../src/crypto/signing.js";
import { DATABASE, IndexedDbDeviceStore } from "../../src/client/indexeddb.js";
import { DeviceContext } from "../../src/client/store.js";

const PROBE = new TextEncoder().encode("signed after a reload");

async function newContext(userKey: boolean): Promise<DeviceContext> {
  const pins = new Map([["bob", crypto.getRandomValues(new Uint8Array(98))]]);
  return new DeviceContext(
    "alice",
    `device-${toHex(crypto.getRandomValues(new Uint8Array(8)))}`,
    userKey ? "approval" : "split-trust",
    PrivateKey.generate(),
    await SigningKey.generate(),
    PrivateKey.generate().publicKey,
    userKey ? PrivateKey.generate() : null,
    pins,
  );
}

function describe(context: DeviceContext): Record<string, unknown> {
  return {
    userId: context.userId,
    deviceId: context.deviceId,
    mode: context.mode,
    deviceKey: toHex(context.deviceKey.toSecretBytes()),
    userKey: context.userKey === null ? null : toHex(context.userKey.toSecretBytes()),
    verifyingKey: toHex(context.signer.verifyingKey.bytes()),
    master: toHex(context.master.bytes()),
    pins: Object.fromEntries([...context.pins].map(([user, key]) => [user, toHex(key)])),
  };
}

/** Save a new context under `name`; what was saved, secrets included, for the test to compare. */
export async function save(name: string, userKey = true): Promise<Record<string, unknown>> {
  const context = await newContext(userKey);
  await new IndexedDbDeviceStore(name).save(context);
  // What a careless page would do: the test looks for secrets in the console.
  console.log("saved", JSON.stringify(context), JSON.stringify(new IndexedDbDeviceStore(name)), `${context}`);
  return describe(context);
}

/** The saved context (after a reload, say), and a signature its signer makes. */
export async function load(name: string): Promise<Record<string, unknown> | null> {
  const store = new IndexedDbDeviceStore(name);
  const context = await store.load();
  if (context === null) return null;
  console.log("loaded", JSON.stringify(context), JSON.stringify(store), String(store));
  const signature = await context.signer.sign(PROBE);
  await new VerifyingKey(context.signer.verifyingKey.bytes()).verify(signature, PROBE);
  return { ...describe(context), json: JSON.stringify({ context, store }), signed: true };
}

export async function clear(name: string): Promise<null | Record<string, unknown>> {
  await new IndexedDbDeviceStore(name).clear();
  return load(name);
}

function idb<T>(req: IDBRequest): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result as T);
    req.onerror = () => reject(req.error);
  });
}

async function raw<T>(mode: IDBTransactionMode, work: (keys: IDBObjectStore, contexts: IDBObjectStore) => Promise<T>): Promise<T> {
  const db = await idb<IDBDatabase>(indexedDB.open(DATABASE));
  try {
    const tx = db.transaction(["keys", "contexts"], mode);
    const done = new Promise((resolve) => (tx.oncomplete = resolve));
    const result = await work(tx.objectStore("keys"), tx.objectStore("contexts"));
    await done;
    return result;
  } finally {
    db.close();
  }
}

/** How each stored key answers `exportKey`: the name of what it throws. */
export async function exportAttempts(name: string): Promise<Record<string, string>> {
  const [key, saved] = await raw("readonly", (keys, contexts) =>
    Promise.all([idb<CryptoKey>(keys.get(name)), idb<{ signer: CryptoKey }>(contexts.get(name))]),
  );
  const attempt = (format: "raw" | "pkcs8" | "jwk", k: CryptoKey) =>
    crypto.subtle.exportKey(format, k).then(
      () => "exported",
      (e: Error) => e.name,
    );
  return {
    storage_extractable: String(key.extractable),
    storage_raw: await attempt("raw", key),
    storage_jwk: await attempt("jwk", key),
    signer_extractable: String(saved.signer.extractable),
    signer_pkcs8: await attempt("pkcs8", saved.signer),
    signer_jwk: await attempt("jwk", saved.signer),
  };
}

type Change = (keys: IDBObjectStore, contexts: IDBObjectStore, name: string) => Promise<unknown>;

async function changeSealed(contexts: IDBObjectStore, name: string, edit: (sealed: Uint8Array) => Uint8Array): Promise<unknown> {
  const saved = await idb<{ sealed: Uint8Array; signer: CryptoKey }>(contexts.get(name));
  return idb(contexts.put({ ...saved, sealed: edit(Uint8Array.from(saved.sealed)) }, name));
}

function flip(at: (sealed: Uint8Array) => number): (sealed: Uint8Array) => Uint8Array {
  return (sealed) => {
    const i = at(sealed);
    sealed[i] = (sealed[i] ?? 0) ^ 1;
    return sealed;
  };
}

const aesKey = (extractable: boolean) =>
  crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, extractable, ["encrypt", "decrypt"]);

const CHANGES: Record<string, () => Promise<Change>> = {
  ciphertext_flipped: async () => (_k, c, n) => changeSealed(c, n, flip((s) => s.length - 20)),
  tag_flipped: async () => (_k, c, n) => changeSealed(c, n, flip((s) => s.length - 1)),
  document_id_changed: async () => (_k, c, n) => changeSealed(c, n, flip(() => 5)),
  nonce_flipped: async () => (_k, c, n) => changeSealed(c, n, flip(() => 4 + "veil-device-context-v1".length + 1)),
  truncated: async () => (_k, c, n) => changeSealed(c, n, (s) => s.subarray(0, 30)),
  extended: async () => (_k, c, n) => changeSealed(c, n, (s) => Uint8Array.of(...s, 0)),
  other_storage_key: async () => {
    const key = await aesKey(false);
    return (k, _c, n) => idb(k.put(key, n));
  },
  storage_key_deleted: async () => (k, _c, n) => idb(k.delete(n)),
  extractable_storage_key: async () => {
    const key = await aesKey(true);
    return (k, _c, n) => idb(k.put(key, n));
  },
  signer_swapped: async () => {
    const other = (await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as CryptoKeyPair;
    return async (_k, c, n) => {
      const saved = await idb<{ sealed: Uint8Array; signer: CryptoKey }>(c.get(n));
      return idb(c.put({ ...saved, signer: other.privateKey }, n));
    };
  },
  record_replaced_by_another_devices: async () => {
    // Another name's record (its own key sealed it) moved under this name.
    await save(`${"other"}`);
    const sealed = await raw("readonly", (_k, c) => idb<unknown>(c.get("other")));
    return (_k, c, n) => idb(c.put(sealed, n));
  },
  not_a_record: async () => (_k, c, n) => idb(c.put("not a record", n)),
};

/** For each way of changing what was saved: the error `load` throws (or "loaded"). */
export async function tamper(): Promise<Record<string, string>> {
  const outcome: Record<string, string> = {};
  for (const [what, make] of Object.entries(CHANGES)) {
    const name = `tamper-${what}`;
    await save(name);
    const change = await make(); // WebCrypto outside the IndexedDB transaction
    await raw("readwrite", (keys, contexts) => change(keys, contexts, name));
    outcome[what] = await new IndexedDbDeviceStore(name).load().then(
      (context) => (context === null ? "null" : "loaded"),
      (error: Error) => {
        console.log(`refused: ${error.name}: ${error.message}`);
        return error.name;
      },
    );
  }
  return outcome;
}
