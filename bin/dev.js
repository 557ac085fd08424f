#!/usr/bin/env -S node --import tsx
// Runs the CLI from sources (needs `npx tsx`); the built bin/run.js is what users run.
import { execute } from '@oclif/core';

await execute({ development: true, dir: import.meta.url });
