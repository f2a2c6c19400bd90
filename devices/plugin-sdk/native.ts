// The plugin SDK's native helper (devices/plugin-sdk/native/): SOCK_SEQPACKET pairs, fd passing
// with SCM_RIGHTS, eventfds, memfds, shared mappings, fd watchers, and the VMM's ioregion
// dispatch table. Node's `net` module can neither create SOCK_SEQPACKET sockets nor carry
// SCM_RIGHTS, and no well-kept npm package does both, so this is a small hand-written addon.
//
// It is loaded with RTLD_GLOBAL so that the KVM addon can find `tsvmm_ioregion_dispatch` with
// dlsym() and forward guest accesses to plugins on the vCPU thread without JavaScript.
// If the addon has not been built yet (fresh clone without `npm install` wiring), it is built
// here once with node-gyp; that takes a few seconds and prints what it does.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

export interface RecvResult {
  /** Bytes received; -1 when nothing was waiting (EAGAIN); 0 when the peer closed. */
  n: number;
  fds: number[];
  /** The kernel dropped passed fds (too many): the ones that arrived were closed. */
  truncated: boolean;
  /** A SOCK_SEQPACKET record was longer than the buffer. */
  messageTruncated: boolean;
}

export interface Watcher {
  /** 1 = readable (or hung up), 2 = writable. */
  start(events: number): void;
  stop(): void;
  close(): void;
}

export interface NativeFdio {
  socketpair(kind: 'seqpacket' | 'stream'): [number, number];
  setNonBlocking(fd: number, on?: boolean): void;
  listenUnix(path: string, backlog?: number): number;
  acceptUnix(fd: number): number;
  connectUnix(path: string): number;
  sendMsg(fd: number, bytes: Uint8Array, fds?: readonly number[]): number;
  recvMsg(fd: number, buffer: Uint8Array): RecvResult;
  eventfd(initial?: number, nonBlocking?: boolean): number;
  eventfdWrite(fd: number, value?: number): void;
  eventfdRead(fd: number): number;
  /** `sealSize`: F_SEAL_SHRINK + F_SEAL_GROW, so whoever receives the fd cannot resize it. */
  memfdCreate(name: string, size: number, sealSize?: boolean): number;
  mapFd(fd: number, offset: number, size: number, writable: boolean): ArrayBuffer;
  /** A read/write MAP_SHARED mapping as a SharedArrayBuffer (shareable with worker threads). */
  mapFdShared(fd: number, offset: number, size: number): SharedArrayBuffer;
  closeFd(fd: number): void;
  /** SO_TYPE of a socket (1 stream, 5 seqpacket), -1 if fd is not a socket. */
  socketType(fd: number): number;
  Watcher: new (fd: number, callback: (events: number, error?: string) => void) => Watcher;

  ioregionOpenChannel(fd: number): number;
  ioregionCloseChannel(channel: number): void;
  ioregionAdd(id: number, bus: number, start: number, size: number, userData: bigint, flags: number, channel: number): void;
  ioregionRemove(id: number): void;
  ioeventfdAdd(id: number, bus: number, address: number, length: number, fd: number, datamatch?: bigint): void;
  ioeventfdRemove(id: number): void;
  /** 0 = no plugin region here, 1 = handled, 2 = the plugin is gone (reads got all-ones). */
  ioregionDispatch(bus: number, address: number, size: number, write: boolean, data: Uint8Array): number;
  ioregionSetTimeout(ms: number): void;
  ioregionFailureFd(): number;
  ioregionTakeFailures(): { channel: number; reason: string }[];
}

export const DISPATCH_MISS = 0;
export const DISPATCH_HANDLED = 1;
export const DISPATCH_FAILED = 2;

const dir = fileURLToPath(new URL('./native/', import.meta.url));
const addonPath = `${dir}build/Release/tsvmm_fdio.node`;

/** Build the addon if it is missing. Safe to call more than once. */
export function buildNativeHelper(): void {
  if (existsSync(addonPath)) return;
  process.stderr.write(`tsvmm: building the plugin native helper in ${dir} (node-gyp, once)\n`);
  const require = createRequire(import.meta.url);
  const gyp = require.resolve('node-gyp/bin/node-gyp.js');
  const nodedir = existsSync('/usr/include/node/node_api.h') ? ['--nodedir=/usr'] : [];
  execFileSync(process.execPath, [gyp, 'rebuild', ...nodedir], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
}

let loaded: NativeFdio | undefined;

export function fdio(): NativeFdio {
  if (loaded) return loaded;
  buildNativeHelper();
  const mod = { exports: {} as NativeFdio };
  process.dlopen(mod, addonPath, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL);
  loaded = mod.exports;
  return loaded;
}

/**
 * Guest RAM that both worker threads (as a SharedArrayBuffer) and plugin processes (through the
 * memfd) can use: what a backend without its own memfd RAM (the interpreter) should allocate so
 * that plugins can do DMA. The fd stays open for the life of the VM (plugins receive copies).
 */
export function sharedGuestRam(name: string, size: number): { fd: number; buffer: SharedArrayBuffer } {
  const n = fdio();
  const fd = n.memfdCreate(name, size);
  return { fd, buffer: n.mapFdShared(fd, 0, size) };
}
