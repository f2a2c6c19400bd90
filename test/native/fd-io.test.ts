// The native fd I/O that everything else stands on: fd passing over a stream socket,
// SOCK_SEQPACKET record boundaries and eventfds (through the device processes' module, built from
// the same sources as the VMM's), and memfd-backed guest RAM shared as a SharedArrayBuffer with
// another process's mapping (the VMM's module).
import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { deviceFdIo } from '../../native/device.ts';
import { sharedGuestRam } from '../../native/vmm.ts';

const native = deviceFdIo();

describe('native fd helper', () => {
  test('SCM_RIGHTS over a stream socket, and SOCK_SEQPACKET keeps 32-byte records whole', () => {
    const [a, b] = native.socketpair('stream');
    const [s1, s2] = native.socketpair('seqpacket');
    expect(native.socketType(s1)).toBe(5);
    expect(native.socketType(a)).toBe(1);
    expect(native.sendMsg(a, new Uint8Array([1, 2, 3]), [s2])).toBe(3);
    const got = native.recvMsg(b, new Uint8Array(16));
    expect(got.n).toBe(3);
    expect(got.fds).toHaveLength(1);
    const passed = got.fds[0]!;
    for (let i = 0; i < 3; i++) native.sendMsg(s1, new Uint8Array(32).fill(i));
    const rec = new Uint8Array(64);
    for (let i = 0; i < 3; i++) {
      const r = native.recvMsg(passed, rec);
      expect(r.n).toBe(32);
      expect(rec[0]).toBe(i);
    }
    expect(native.recvMsg(passed, rec).n).toBe(-1); // nothing more: EAGAIN, not a block
    native.sendMsg(s1, new Uint8Array(40));
    expect(native.recvMsg(passed, new Uint8Array(32)).messageTruncated).toBe(true);
    for (const fd of [a, b, s1, s2, passed]) native.closeFd(fd);
  });

  test('eventfd counts and coalesces', () => {
    const e = native.eventfd(0, true);
    expect(native.eventfdRead(e)).toBe(-1);
    native.eventfdWrite(e, 1);
    native.eventfdWrite(e, 2);
    expect(native.eventfdRead(e)).toBe(3);
    native.closeFd(e);
  });

  test('memfd guest RAM as a SharedArrayBuffer is the same memory another process maps', () => {
    const ram = sharedGuestRam('test-ram', 1 << 20);
    expect(ram.buffer).toBeInstanceOf(SharedArrayBuffer);
    const view = new Uint8Array(ram.buffer);
    view[4096] = 0x5a;
    // Another process writes through /proc/<our pid>/fd/<fd> (the same memfd) and reads our byte.
    const r = spawnSync('python3', ['-c', `
import mmap, os
fd = os.open('/proc/${process.pid}/fd/${ram.fd}', os.O_RDWR)
m = mmap.mmap(fd, 1 << 20)
print(m[4096])
m[8192] = 0xa5
`], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe(String(0x5a));
    expect(view[8192]).toBe(0xa5);
    native.closeFd(ram.fd);
  });
});
