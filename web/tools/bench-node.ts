/**
 * `node dist/tools/bench-node.js VECTORS.json RUNS`: `bench.ts`'s timings in Node, as
 * one JSON object on stdout (read by `veil bench web`).
 */

import { readFile } from "node:fs/promises";

import { measure } from "./bench.js";

const [path, runs = "5"] = process.argv.slice(2);
if (path === undefined) {
  console.error("usage: node dist/tools/bench-node.js VECTORS.json [RUNS]");
  process.exit(2);
}
const document = JSON.parse(await readFile(path, "utf8"));
const timings = await measure(document, Number(runs));
console.log(JSON.stringify({ ...timings, node: process.version }));
