#!/usr/bin/env node
// `worker start` runs only the worker in its process: V8's young generation is capped before anything
// else loads, or start-up alone would grow it past the cap (src/cli/young-generation.ts says why).
const [topic, verb] = process.argv.slice(2);
if ((topic === 'worker' && verb === 'start') || topic === 'worker:start') {
  const { capYoungGeneration } = await import('../dist/cli/young-generation.js');
  capYoungGeneration();
}
const { execute } = await import('@oclif/core');

await execute({ dir: import.meta.url });
