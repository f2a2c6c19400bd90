#!/usr/bin/env node
// Runs one of tsvmm's TypeScript plugins from source: node run-plugin.js <plugin.ts> [args...].
// The plugin sees its own arguments from process.argv[2] on, as if it had been run directly.
import { register } from 'tsx/esm/api';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [, , module, ...args] = process.argv;
if (!module) {
  process.stderr.write('usage: run-plugin.js <plugin.ts> [args...]\n');
  process.exit(2);
}
process.argv = [process.argv[0], resolve(module), ...args];
register();
await import(pathToFileURL(resolve(module)).href);
