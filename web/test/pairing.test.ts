import assert from "node:assert/strict";
import { test } from "node:test";

import * as pg from "../src/crypto/pairing.js";

test("compressed GT round-trips and the identity is zeros", () => {
  const x = pg.randomGt();
  const c = pg.compressGt(x);
  assert.equal(c.length, 288);
  assert.ok(pg.gtEqual(pg.decompressGt(c), x));
  assert.deepEqual(pg.compressGt(pg.decompressGt(new Uint8Array(288), { allowIdentity: true })), new Uint8Array(288));
});
