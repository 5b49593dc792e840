import assert from "node:assert/strict";
import { inspect } from "node:util";
import { test } from "node:test";

import { toHex } from "../src/crypto/encoding.js";
import { Plaintext, PrivateKey, encrypt, decrypt } from "../src/crypto/pre.js";
import { SigningKey } from "../src/crypto/signing.js";

test("secrets never reach JSON or inspection", async () => {
  const key = PrivateKey.generate();
  const plaintext = Plaintext.generate();
  const signer = await SigningKey.generate();
  const secret = toHex(key.toSecretBytes());
  const element = toHex(plaintext.toSecretBytes()).slice(0, 64);
  const shown = JSON.stringify({ key, plaintext, signer }) + inspect({ key, plaintext, signer }, { depth: 5 });
  assert.ok(!shown.includes(secret) && !shown.includes(element), shown);
  // A failed decryption says nothing of the key or the candidate plaintext.
  const value = await encrypt(plaintext, key.publicKey, signer);
  const error = await decrypt(value, PrivateKey.generate()).catch((e: unknown) => e);
  assert.equal((error as Error).name, "DecryptionError");
  assert.equal((error as Error).message, "the value did not decrypt");
});
