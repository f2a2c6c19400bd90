// Every registration rule of the region registry, through a real plugin control socket
// (`--plugin-socket`): KVM_SET_IOREGION's v3 errnos plus tsvmm's slot and limit rules.
import { closeSync, ftruncateSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { vmmNative } from '../../native/vmm.ts';
import { Plugin, PluginRequestError } from '../../devices/plugin-sdk/plugin.ts';
import { Command, encodeIoeventfd, encodeIoregion, Errno, IoeventfdFlag, IoregionFlag } from '../../wire/protocol.ts';
import { SLOT_STATE_SIZE } from '../../base/slots.ts';
import type { PluginSlot } from '../../vmm/plugin-host/manager.ts';
import { startHarness, type Harness } from './support/harness.ts';

const native = vmmNative();
let dir: string;
let h: Harness;
let slot: PluginSlot;
let other: PluginSlot;
let plugin: Plugin;
let seq: [number, number];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tsvmm-reg-'));
  h = startHarness({ maxRegionsPerPlugin: 16 });
  slot = h.manager.addSocket(join(dir, 'a.sock'));
  other = h.manager.addSocket(join(dir, 'b.sock'));
  // An in-process device inside slot a, reserved in the same registry.
  h.manager.registry.reserveInProcess('mmio', slot.mmioBase + 0xf00, 0x10, 'in-process-test-device');
  plugin = await Plugin.connect({ name: 'errno-test', socketPath: join(dir, 'a.sock') });
  seq = native.socketpair('seqpacket');
});

afterEach(async () => {
  plugin.close();
  native.closeFd(seq[0]);
  native.closeFd(seq[1]);
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

/** REGISTER_REGION with explicit fields; resolves to 0 or the errno. */
async function region(paddr: bigint, size: bigint, flags: number, fds: number[] = [seq[1]], readFd = 0, writeFd = 0): Promise<number> {
  try {
    await plugin.request(Command.REGISTER_REGION, encodeIoregion({ guestPaddr: paddr, memorySize: size, userData: 7n, readFd, writeFd, flags }), fds);
    return 0;
  } catch (e) {
    if (e instanceof PluginRequestError) return e.errno;
    throw e;
  }
}

async function ioeventfd(addr: bigint, len: number, flags: number, datamatch = 0n, fd?: number): Promise<number> {
  const efd = fd ?? native.eventfd(0, true);
  try {
    await plugin.request(Command.REGISTER_IOEVENTFD, encodeIoeventfd({ datamatch, addr, len, fd: 0, flags }), [efd]);
    return 0;
  } catch (e) {
    if (e instanceof PluginRequestError) return e.errno;
    throw e;
  } finally {
    if (fd === undefined) native.closeFd(efd);
  }
}

describe('region registration errnos (real control socket)', () => {
  test('the handshake gave the plugin its slot and the guest memory map', () => {
    expect(plugin.slot.mmioBase).toBe(slot.mmioBase);
    expect(plugin.slot.irq).toBe(slot.irq);
    expect(plugin.memory.size).toBe(32 * 1024 * 1024);
    expect(() => plugin.memory.range(0xfee0_0000, 4)).toThrow(/reserved/);
    expect(() => plugin.memory.range(32 * 1024 * 1024 - 2, 4)).toThrow(/not inside guest RAM/);
    expect(h.manager.kernelCmdline()).toEqual([
      `virtio_mmio.device=4K@0x${slot.mmioBase.toString(16)}:${slot.irq}`,
      `virtio_mmio.device=4K@0x${other.mmioBase.toString(16)}:${other.irq}`,
    ]);
  });

  test('EEXIST: overlap with an ioregion, an ioeventfd, or an in-process device on the same bus', async () => {
    const base = BigInt(slot.mmioBase);
    expect(await region(base, 0x100n, 0)).toBe(0);
    expect(await region(base + 0xffn, 1n, 0)).toBe(Errno.EEXIST);
    expect(await region(base + 0x80n, 0x10n, 0)).toBe(Errno.EEXIST);
    expect(await ioeventfd(base + 0x10n, 4, 0)).toBe(Errno.EEXIST);
    expect(await ioeventfd(base + 0x200n, 4, IoeventfdFlag.DATAMATCH, 1n)).toBe(0);
    expect(await ioeventfd(base + 0x200n, 4, IoeventfdFlag.DATAMATCH, 2n)).toBe(0); // KVM allows other datamatch values
    expect(await ioeventfd(base + 0x200n, 4, IoeventfdFlag.DATAMATCH, 1n)).toBe(Errno.EEXIST);
    expect(await region(base + 0x1f8n, 0x10n, 0)).toBe(Errno.EEXIST);
    expect(await region(base + 0xef0n, 0x20n, 0)).toBe(Errno.EEXIST); // the in-process device
    // A doorbell counts as 8 bytes for collisions, as in v3.
    expect(await region(base + 0x300n, 0n, IoregionFlag.POSTED_WRITES)).toBe(0);
    expect(await region(base + 0x304n, 4n, 0)).toBe(Errno.EEXIST);
    // Different bus: no collision.
    expect(await region(BigInt(slot.pioBase), 0x10n, IoregionFlag.PIO)).toBe(0);
  });

  test('EINVAL: zero size without POSTED_WRITES, unknown flags, overflow, bad fds and sizes', async () => {
    const base = BigInt(slot.mmioBase);
    expect(await region(base, 0n, 0)).toBe(Errno.EINVAL);
    expect(await region(base, 0x10n, 0x8)).toBe(Errno.EINVAL);
    expect(await region(base, 0x10n, 0x80000000)).toBe(Errno.EINVAL);
    expect(await region(0xffff_ffff_ffff_fff0n, 0x100n, 0)).toBe(Errno.EINVAL);
    expect(await region(0xfff0n, 0x100n, IoregionFlag.PIO)).toBe(Errno.EINVAL); // past port 0xffff
    const [s1, s2] = native.socketpair('stream');
    expect(await region(base, 0x10n, 0, [s1])).toBe(Errno.EINVAL); // not SOCK_SEQPACKET
    native.closeFd(s1);
    native.closeFd(s2);
    const [a1, a2] = native.socketpair('seqpacket');
    expect(await region(base, 0x10n, 0, [seq[1], a1], 0, 1)).toBe(Errno.EINVAL); // distinct read/write fds
    native.closeFd(a1);
    native.closeFd(a2);
    expect(await ioeventfd(base + 0x50n, 3, 0)).toBe(Errno.EINVAL);
    expect(await ioeventfd(base + 0x50n, 0, IoeventfdFlag.DATAMATCH)).toBe(Errno.EINVAL);
    expect(await ioeventfd(base + 0x50n, 4, 0x10)).toBe(Errno.EINVAL);
    const notEventfd = openSync('/dev/null', 'r');
    expect(await ioeventfd(base + 0x50n, 4, 0, 0n, notEventfd)).toBe(Errno.EINVAL);
    closeSync(notEventfd);
  });

  test('EBADF: a region whose fd index names no passed fd', async () => {
    const base = BigInt(slot.mmioBase);
    expect(await region(base, 0x10n, 0, [], 0, 0)).toBe(Errno.EBADF);
    expect(await region(base, 0x10n, 0, [seq[1]], 1, 1)).toBe(Errno.EBADF);
    expect(await region(base, 0x10n, 0, [seq[1]], -1, -1)).toBe(Errno.EBADF);
  });

  test('ENOENT: DEASSIGN must match guest_paddr and memory_size exactly', async () => {
    const base = BigInt(slot.mmioBase);
    expect(await region(base + 0x100n, 0x20n, 0)).toBe(0);
    expect(await region(base + 0x100n, 0x10n, IoregionFlag.DEASSIGN, [])).toBe(Errno.ENOENT);
    expect(await region(base + 0x108n, 0x20n, IoregionFlag.DEASSIGN, [])).toBe(Errno.ENOENT);
    expect(await region(base + 0x100n, 0x20n, IoregionFlag.DEASSIGN | IoregionFlag.PIO, [])).toBe(Errno.ENOENT);
    expect(await region(base + 0x100n, 0x20n, IoregionFlag.DEASSIGN, [])).toBe(0);
    expect(await region(base + 0x100n, 0x20n, IoregionFlag.DEASSIGN, [])).toBe(Errno.ENOENT);
    expect(await region(base + 0x100n, 0x20n, 0)).toBe(0); // the range is free again
    expect(await ioeventfd(base + 0x400n, 4, IoeventfdFlag.DEASSIGN)).toBe(Errno.ENOENT);
  });

  test('the SDK deassigns what it registered, and the ranges are free again', async () => {
    const r = await plugin.registerRegion({ offset: 0x40, size: 0x10, handler: {} });
    const ev = await plugin.registerIoeventfd({ offset: 0x50, length: 4, datamatch: 3n, onSignal: () => undefined });
    expect(h.manager.registry.list()).toHaveLength(2);
    await plugin.deregisterRegion(r);
    await plugin.deregisterIoeventfd(ev);
    expect(h.manager.registry.list()).toHaveLength(0);
    expect(await region(BigInt(slot.mmioBase + 0x40), 0x20n, 0)).toBe(0);
  });

  test('EPERM: only inside the plugin\'s own slot', async () => {
    expect(await region(BigInt(slot.mmioBase + slot.mmioSize), 0x10n, 0)).toBe(Errno.EPERM);
    expect(await region(BigInt(slot.mmioBase + slot.mmioSize - 8), 0x10n, 0)).toBe(Errno.EPERM);
    expect(await region(BigInt(other.mmioBase), 0x10n, 0)).toBe(Errno.EPERM);
    expect(await region(0x1000n, 0x10n, 0)).toBe(Errno.EPERM); // guest RAM
    expect(await region(0xfee0_0000n, 0x10n, 0)).toBe(Errno.EPERM); // LAPIC
    expect(await region(0x3f8n, 8n, IoregionFlag.PIO)).toBe(Errno.EPERM); // COM1
    expect(await ioeventfd(BigInt(other.mmioBase + 0x50), 4, 0)).toBe(Errno.EPERM);
  });

  test('ENOSPC: at most maxRegionsPerPlugin registrations', async () => {
    const base = BigInt(slot.mmioBase);
    for (let i = 0; i < 16; i++) expect(await region(base + BigInt(i * 0x10), 0x10n, 0)).toBe(0);
    expect(await region(base + 0x800n, 0x10n, 0)).toBe(Errno.ENOSPC);
    expect(await ioeventfd(base + 0x900n, 4, 0)).toBe(Errno.ENOSPC);
    expect(await region(base, 0x10n, IoregionFlag.DEASSIGN, [])).toBe(0);
    expect(await region(base + 0x800n, 0x10n, 0)).toBe(0);
  });

  test('refusals are logged with the reason, and the connection stays usable', async () => {
    expect(await region(BigInt(other.mmioBase), 0x10n, 0)).toBe(Errno.EPERM);
    expect(h.logs.some((l) => /REGISTER_REGION refused with EPERM: .*outside/.test(l))).toBe(true);
    expect(await region(BigInt(slot.mmioBase), 0x10n, 0)).toBe(0);
  });

  test('a plugin that disconnects loses its registrations; a new one reattaches to the slot and registers again', async () => {
    expect(await region(BigInt(slot.mmioBase), 0x100n, 0)).toBe(0);
    expect(h.manager.registry.list()).toHaveLength(1);
    plugin.close();
    await h.waitLog(/plugin socket\(.*a\.sock\) \(slot 0\) failed: .*it may reattach/);
    expect(h.manager.registry.list()).toHaveLength(0);
    plugin = await Plugin.connect({ name: 'errno-test-again', socketPath: join(dir, 'a.sock') });
    expect(plugin.slot.mmioBase).toBe(slot.mmioBase);
    expect(await region(BigInt(slot.mmioBase), 0x100n, 0)).toBe(0);
    expect(h.manager.slots[0]!.state).toBe('attached');
  });

  test('unknown commands get ENOSYS; VMM-only commands from a plugin close the connection', async () => {
    await expect(plugin.request(200, new Uint8Array(0))).rejects.toMatchObject({ errno: Errno.ENOSYS });
    const reason = plugin.closed;
    await expect(plugin.request(Command.RESET, new Uint8Array(0))).rejects.toThrow(/closed/);
    expect(await reason).toMatch(/closed/);
    await h.waitLog(/RESET is sent by the VMM/);
  });
});

describe('slot state memory (GET_STATE, protocol 1.1)', () => {
  /** Disconnect and attach a new plugin to slot a, as a restarted process would. */
  async function reconnect(): Promise<void> {
    plugin.close();
    await h.waitLog(/plugin socket\(.*a\.sock\) \(slot 0\) failed/);
    plugin = await Plugin.connect({ name: 'state-test-again', socketPath: join(dir, 'a.sock') });
  }

  test('the same memory reaches the next process on the slot; another slot has its own', async () => {
    const state = (await plugin.persistentState())!;
    expect(state.byteLength).toBe(SLOT_STATE_SIZE);
    expect(state.every((b) => b === 0)).toBe(true);
    state.set([1, 2, 3], 100);
    await reconnect();
    expect([...(await plugin.persistentState())!.subarray(100, 103)]).toEqual([1, 2, 3]);
    const b = await Plugin.connect({ name: 'state-test-b', socketPath: join(dir, 'b.sock') });
    expect((await b.persistentState())!.every((x) => x === 0)).toBe(true);
    b.close();
  });

  test('a machine reset while no plugin is attached clears it', async () => {
    (await plugin.persistentState())![0] = 0x5a;
    plugin.close();
    await h.waitLog(/plugin socket\(.*a\.sock\) \(slot 0\) failed/);
    await h.manager.reset();
    plugin = await Plugin.connect({ name: 'state-test-again', socketPath: join(dir, 'a.sock') });
    expect((await plugin.persistentState())![0]).toBe(0);
  });

  test('the memfd is sealed: the plugin cannot resize it', async () => {
    const m = await plugin.request(Command.GET_STATE, new Uint8Array(0));
    const fd = m.fds[0]!;
    expect(fstatSync(fd).size).toBe(SLOT_STATE_SIZE);
    expect(() => ftruncateSync(fd, 1 << 30)).toThrow(/EPERM/);
    expect(() => ftruncateSync(fd, 0)).toThrow(/EPERM/);
    closeSync(fd);
  });

  test('a GET_STATE with a payload is malformed and closes the connection', async () => {
    const reason = plugin.closed;
    await expect(plugin.request(Command.GET_STATE, new Uint8Array(4))).rejects.toThrow(/closed/);
    expect(await reason).toMatch(/closed/);
    await h.waitLog(/malformed GET_STATE/);
  });
});
