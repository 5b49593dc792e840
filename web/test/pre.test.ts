/** The PRE origin check, as tests/crypto/test_pre.py's: a value that does not descend
 * from the author's signed level-0 value is refused, whoever signed it. And the identity
 * is no public key, even built in-process (issue 16's attack finding). */

import assert from "node:assert/strict";
import { test } from "node:test";

import { DecryptionError, IdentityElement } from "../src/crypto/errors.js";
import * as pg from "../src/crypto/pairing.js";
import { EncryptedValue, Plaintext, PrivateKey, PublicKey, decrypt, descendsFrom, encrypt } from "../src/crypto/pre.js";
import { SigningKey } from "../src/crypto/signing.js";

test("origin binds a value to its author: a planted one of the same key is refused", async () => {
  const [author, planter] = await Promise.all([SigningKey.generate(), SigningKey.generate()]);
  const a = PrivateKey.generate();
  const m = Plaintext.generate();
  const posted = await encrypt(m, a.publicKey, author);
  assert.ok((await decrypt(posted, a, { origin: posted })).equals(m));
  // Whoever can encrypt to the key (the key service, say) plants a value of its own.
  const planted = await encrypt(Plaintext.generate(), a.publicKey, planter);
  await decrypt(planted, a); // without origin it decrypts: the danger
  await assert.rejects(decrypt(planted, a, { origin: posted }), DecryptionError);
  assert.equal(descendsFrom(planted, posted), false);
  // An origin must be verified (signature checked): a value merely parsed is refused.
  const parsed = EncryptedValue.fromBytes(posted.bytes());
  assert.throws(() => descendsFrom(posted, parsed as never), TypeError);
  assert.equal(descendsFrom(await parsed.verify(), posted), true);
});

test("the identity is not a public key, even built in-process", () => {
  // Encrypting to it would leave the body equal to the plaintext (every pairing with it
  // is 1): the wire decoder refuses it, and so must the constructor.
  const identity = pg.P.subtract(pg.P);
  assert.throws(() => new PublicKey(identity), IdentityElement);
  assert.throws(() => new PublicKey(identity), /the identity is not a public key/);
  assert.ok(new PublicKey(pg.P.multiply(7n)).point.equals(pg.P.multiply(7n)));
});
