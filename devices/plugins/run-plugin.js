#!/usr/bin/env node
// Runs one of tsvmm's TypeScript plugins from source: node run-plugin.js <plugin.ts> [args...].
// The plugin sees its own arguments from process.argv[2] on, as if it had been run directly.
//
// It also gives every plugin the same way out: a VMM that closes the connection (it is shutting
// down, possibly before the plugin finished its handshake, or it refused the plugin and said why
// on its side) ends the plugin quietly with status 0, as a closed control socket after the
// handshake does; any other error ends it with one line naming it and status 1. No stack trace
// reaches the VMM's log unless TSVMM_DEBUG=1 asks for it.
import { register } from 'tsx/esm/api';
import { basename, dirname, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [, , module, ...args] = process.argv;
if (!module) {
  process.stderr.write('usage: run-plugin.js <plugin.ts> [args...]\n');
  process.exit(2);
}
// A plugin's name for its one-line errors: its folder for a main.ts, otherwise its file.
const file = basename(module, extname(module));
const name = file === 'main' ? basename(dirname(resolve(module))) : file;

function fail(e) {
  if (e instanceof Error && e.name === 'ConnectionClosedError') process.exit(0);
  const debug = process.env.TSVMM_DEBUG && e instanceof Error && e.stack;
  process.stderr.write(`${name}: ${e instanceof Error ? e.message : String(e)}${debug ? `\n${e.stack}` : ''}\n`);
  process.exit(1);
}
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

process.argv = [process.argv[0], resolve(module), ...args];
register();
try {
  await import(pathToFileURL(resolve(module)).href);
} catch (e) {
  fail(e);
}
