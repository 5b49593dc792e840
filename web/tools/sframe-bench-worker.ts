/** The worker `sframe-bench.ts`'s `inWorker` starts: one measurement per message. */

import { sframeAgainstAesGcm } from "./sframe-bench.js";

async function run(event: MessageEvent<{ size: number; codec: string; runs: number }>): Promise<void> {
  const { size, codec, runs } = event.data;
  try {
    postMessage(await sframeAgainstAesGcm(size, codec, runs));
  } catch (error) {
    postMessage({ error: `${(error as Error).name}: ${(error as Error).message}` });
  }
}

// Only as a worker (`node --test dist/test/` does not load tools/, but a script may).
if ("WorkerGlobalScope" in globalThis) globalThis.onmessage = run;
