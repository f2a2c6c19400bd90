// Fuzzing both plugin sockets of a real VMM plugin manager, bounded and seeded:
// - the control socket: thousands of random and mutated messages (with and without fds, before
//   and after a valid handshake); every connection must be closed or answered, never crash or
//   wedge the manager, and a well-behaved plugin must attach afterwards with nothing leaked;
// - the dispatch socket: a plugin process answering guest accesses with garbage, twice, late or
//   never; every access must complete (value or all-ones) and the plugin be declared failed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { DISPATCH_FAILED, DISPATCH_HANDLED, DISPATCH_MISS, vmmNative } from '../../native/vmm.ts';
import { Plugin } from '../../devices/plugin-sdk/plugin.ts';
import {
  buildMessage, Command, encodeIoeventfd, encodeIoregion, encodeVersion, Flags, PROTOCOL_MAJOR,
} from '../../wire/protocol.ts';
import { builtinPluginArgv } from '../../vmm/plugin-host/manager.ts';
import { prng } from './support/prng.ts';
import { startHarness, type Harness } from './support/harness.ts';

const native = vmmNative();
let dir: string;
let h: Harness;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsvmm-fuzz-'));
});
afterEach(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

const SYNC_ID = 0xfffe;

/** Read the VMM's replies on a raw connection until the one with `id` arrives or the VMM closes it; returns how many replies came. */
function drainUntilReply(fd: number, id: number): Promise<number> {
  return new Promise((resolve) => {
    const buf = new Uint8Array(1 << 17);
    let len = 0;
    let count = 0;
    const w = new native.Watcher(fd, () => {
      for (;;) {
        let r;
        try {
          r = native.recvMsg(fd, buf.subarray(len));
        } catch {
          return done(); // ECONNRESET: the VMM closed on us with data unread
        }
        r.fds.forEach((x) => native.closeFd(x));
        if (r.n < 0) return;
        if (r.n === 0) return done();
        len += r.n;
        let off = 0;
        while (len - off >= 16) {
          const v = new DataView(buf.buffer, off);
          const size = v.getUint32(4, true);
          if (len - off < size) break;
          count++;
          if (v.getUint16(0, true) === id && v.getUint16(2, true) === Command.GET_SLOT) return done();
          off += size;
        }
        buf.copyWithin(0, off, len);
        len -= off;
      }
    });
    const done = () => {
      w.close();
      resolve(count);
    };
    w.start(1);
  });
}

const SEED = Number(process.env.TSVMM_FUZZ_SEED ?? 0x5eed);

describe('fuzzing the plugin sockets', () => {
  test(`control socket: random and mutated messages (seed ${SEED})`, async () => {
    h = startHarness();
    const path = join(dir, 'fuzz.sock');
    const slot = h.manager.addSocket(path);
    const rnd = prng(SEED);
    const base = BigInt(slot.mmioBase);
    const templates = (): { bytes: Uint8Array; fds: () => number[] }[] => {
      const msg = (cmd: number, payload: Uint8Array, nfds = 0) => buildMessage(rnd.int(0xfff0), cmd, Flags.TYPE_COMMAND, payload, { fds: nfds });
      const seqFd = () => { const [a, b] = native.socketpair('seqpacket'); native.closeFd(a); return [b]; };
      const evFd = () => [native.eventfd(0, true)];
      const argsz = new Uint8Array(8); new DataView(argsz.buffer).setUint32(0, rnd.pick([0, 16, 48, 1 << 30]), true);
      return [
        { bytes: msg(Command.VERSION, encodeVersion({ major: PROTOCOL_MAJOR, minor: 0, caps: { name: 'fuzz' } })), fds: () => [] },
        { bytes: msg(Command.GET_SLOT, new Uint8Array(0)), fds: () => [] },
        { bytes: msg(Command.GET_MEMORY_MAP, argsz), fds: () => [] },
        { bytes: msg(Command.GET_IRQFD, new Uint8Array(0)), fds: () => [] },
        { bytes: msg(Command.REGISTER_REGION, encodeIoregion({ guestPaddr: base + BigInt(rnd.int(0x1100)), memorySize: BigInt(rnd.pick([0, 1, 4, 0x100, 0x2000])), userData: 1n, readFd: rnd.pick([0, 0, -1, 1]), writeFd: 0, flags: rnd.int(8) }), 1), fds: seqFd },
        { bytes: msg(Command.REGISTER_IOEVENTFD, encodeIoeventfd({ datamatch: 0n, addr: base + BigInt(rnd.int(0x1100)), len: rnd.pick([0, 1, 2, 3, 4, 8]), fd: 0, flags: rnd.int(8) }), 1), fds: evFd },
        { bytes: msg(Command.READY, new Uint8Array(0)), fds: () => [] },
        { bytes: msg(Command.LOG, Uint8Array.from([2, 0, 0, 0, 0, 0, 0, 0, 104, 105])), fds: () => [] },
        { bytes: msg(Command.CONSOLE_WRITE, Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 104, 105])), fds: () => [] },
        { bytes: msg(rnd.int(40), rnd.bytes(rnd.int(80))), fds: () => [] },
      ];
    };
    const mutate = (m: Uint8Array): Uint8Array => {
      const b = m.slice();
      switch (rnd.int(6)) {
        case 0: return b; // valid
        case 1: for (let i = 0, n = 1 + rnd.int(4); i < n; i++) b[rnd.int(b.length)] = rnd.int(256); return b; // flipped bytes
        case 2: return b.subarray(0, rnd.int(b.length)); // truncated
        case 3: { const c = new Uint8Array(b.length + 1 + rnd.int(64)); c.set(b); c.set(rnd.bytes(c.length - b.length), b.length); return c; } // trailing junk
        case 4: new DataView(b.buffer).setUint32(4, rnd.pick([0, 15, 16, 17, 65537, 0xffffffff, b.length + 8]), true); return b; // size field
        default: new DataView(b.buffer).setUint32(8, rnd.int(2 ** 32), true); return b; // flags (type, fd count)
      }
    };

    let messages = 0;
    let replies = 0;
    let failures = 0;
    const CONNECTIONS = 600;
    for (let c = 0; c < CONNECTIONS; c++) {
      const fd = native.connectUnix(path);
      const handshake = rnd.int(2) === 0;
      if (handshake) {
        native.sendMsg(fd, templates()[0]!.bytes);
        messages++;
      }
      // Well-formed messages with random fields (to reach deep into the session's state), a
      // GET_SLOT whose reply (or the end of the stream) says the manager handled them, then
      // possibly one mutated or random message (a framing error ends a stream; a truncated
      // message leaves the manager waiting for the rest until we hang up).
      const send = (bytes: Uint8Array, fds: number[] = []) => {
        try {
          native.sendMsg(fd, bytes, fds);
        } catch {
          // the manager already closed this connection (EPIPE, ECONNRESET): fine
        }
        fds.forEach((x) => native.closeFd(x));
        messages++;
      };
      for (let i = 0, n = rnd.int(14); i < n; i++) {
        const t = rnd.pick(templates());
        send(t.bytes, t.fds());
      }
      send(buildMessage(SYNC_ID, Command.GET_SLOT, Flags.TYPE_COMMAND, new Uint8Array(0)));
      replies += await drainUntilReply(fd, SYNC_ID);
      if (rnd.int(3) !== 0) {
        const t = rnd.pick(templates());
        send(rnd.int(6) === 0 ? rnd.bytes(rnd.int(128)) : mutate(t.bytes), rnd.int(3) === 0 ? [] : t.fds());
      }
      native.closeFd(fd);
      // Each connection ends in exactly one logged failure (its close or its rejection); wait
      // for it so the next connection is not refused as a second plugin on the slot.
      failures++;
      if (process.env.TSVMM_TEST_VERBOSE) console.log(`connection ${c} done, waiting for failure ${failures}`);
      await h.waitLogCount(/failed:/, failures);
    }
    expect(messages).toBeGreaterThan(4000);
    expect(replies).toBeGreaterThan(500);
    // Handler exceptions would be logged as internal errors: there must be none.
    expect(h.logs.filter((l) => /internal error/.test(l))).toEqual([]);
    expect(h.logs.some((l) => /malformed/.test(l))).toBe(true);
    expect(h.logs.some((l) => /refused with E/.test(l))).toBe(true);

    // The manager still works: a real plugin attaches, registers and becomes ready.
    expect(h.manager.registry.list()).toEqual([]);
    const plugin = await Plugin.connect({ name: 'after-fuzz', socketPath: path });
    await plugin.registerRegion({ offset: 0, size: 0x10, handler: {} });
    await plugin.ready();
    expect(h.manager.registry.list().map((e) => e.start)).toEqual([slot.mmioBase]);
    plugin.close();
  }, 300_000);

  test(`dispatch socket: a plugin answering with garbage, twice, late or never (seed ${SEED})`, async () => {
    h = startHarness({ dispatchTimeoutMs: 250 });
    const script = fileURLToPath(new URL('./support/fuzz-dispatch-plugin.ts', import.meta.url));
    const slot = h.manager.addArgv([...builtinPluginArgv('example').slice(0, 2), script, String(SEED), '3'], 'fuzz-dispatch');
    await h.manager.waitReady();
    const rnd = prng(SEED + 1);
    const outcomes = { handled: 0, failed: 0, miss: 0, restarts: 0 };
    for (let i = 0; i < 1200; i++) {
      const region = rnd.pick([0, 0x100, 0x200]);
      const addr = slot.mmioBase + region + (region === 0x200 ? 0 : rnd.int(0x100 / 8) * 8);
      const size = rnd.pick([1, 2, 4, 8]);
      const data = new Uint8Array(8);
      const write = region !== 0 || rnd.int(2) === 0;
      const r = native.ioregionDispatch(0, addr, size, write, data);
      expect([DISPATCH_HANDLED, DISPATCH_FAILED, DISPATCH_MISS]).toContain(r);
      if (r === DISPATCH_FAILED && !write) expect([...data.subarray(0, size)].every((b) => b === 0xff)).toBe(true);
      if (r === DISPATCH_HANDLED) outcomes.handled++;
      else {
        if (r === DISPATCH_FAILED) outcomes.failed++; else outcomes.miss++;
        // The plugin is gone or being declared so: wait for the manager to log it, then restart.
        await h.waitLogCount(/plugin fuzz-dispatch .*failed:/, outcomes.restarts + 1);
        outcomes.restarts++;
        h.manager.restart(slot.index);
        await h.manager.whenReady(slot.index);
      }
    }
    expect(outcomes.handled).toBeGreaterThan(800);
    expect(outcomes.restarts).toBeGreaterThan(3);
    const reasons = h.logs.filter((l) => /plugin fuzz-dispatch .*failed:/.test(l)).join('\n');
    expect(reasons).toMatch(/malformed dispatch response|no command asked for|did not answer|closed its dispatch socket/);
  }, 300_000);
});
