/** The device context's sealed form, in Node (the IndexedDB store itself is tested in
 * Chromium: tests/web_sdk/test_device_store.py). */

import assert from "node:assert/strict";
import { test } from "node:test";

import { IndexedDbDeviceStore, MemoryDeviceStore } from "../src/client/index.js";
import { DeviceContext } from "../src/client/store.js";
import { PrivateKey } from "../src/crypto/pre.js";
import { SigningKey } from "../src/crypto/signing.js";

async function context(): Promise<DeviceContext> {
  return new DeviceContext(
    "alice",
    "dev-1",
    "approval",
    PrivateKey.generate(),
    await SigningKey.generate(),
    PrivateKey.generate().publicKey,
    PrivateKey.generate(),
    new Map([["bob", Uint8Array.of(1, 2, 3)]]),
  );
}

test("a context's sealed bytes give it back, with the signing key they name", async () => {
  const saved = await context();
  const data = saved.toSecretBytes();
  const loaded = DeviceContext.fromSecretBytes(data, (verifyingKey) => {
    assert.ok(verifyingKey.equals(saved.signer.verifyingKey));
    return saved.signer;
  });
  assert.deepEqual(loaded.deviceKey.toSecretBytes(), saved.deviceKey.toSecretBytes());
  assert.deepEqual(loaded.userKey?.toSecretBytes(), saved.userKey?.toSecretBytes());
  assert.ok(loaded.master.equals(saved.master));
  assert.deepEqual([...loaded.pins], [...saved.pins]);
  assert.deepEqual([loaded.userId, loaded.deviceId, loaded.mode], ["alice", "dev-1", "approval"]);
  assert.equal(JSON.stringify(loaded), '{"userId":"alice","deviceId":"dev-1","mode":"approval"}');
});

test("a context with an unknown mode or a missing field is refused", async () => {
  const saved = await context();
  const edit = (change: (d: Record<string, unknown>) => void) => {
    const d = JSON.parse(new TextDecoder().decode(saved.toSecretBytes()));
    change(d);
    return new TextEncoder().encode(JSON.stringify(d));
  };
  const signer = () => saved.signer;
  assert.throws(() => DeviceContext.fromSecretBytes(edit((d) => (d.mode = "root")), signer), /unknown mode/);
  assert.throws(() => DeviceContext.fromSecretBytes(edit((d) => delete d.device_key), signer), /device_key/);
});

test("the memory store forgets on clear; IndexedDB is refused where there is none", async () => {
  const store = new MemoryDeviceStore();
  await store.save(await context());
  assert.notEqual(await store.load(), null);
  await store.clear();
  assert.equal(await store.load(), null);
  assert.throws(() => new IndexedDbDeviceStore("x"), /IndexedDB is not available here/);
});
