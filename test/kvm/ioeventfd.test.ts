// ioeventfd doorbells: guest writes to a registered port or MMIO address signal an eventfd
// inside KVM, with no exit to the VMM. The guest runs at CPL3 in long mode (natively here).
import { afterEach, describe, expect, test } from 'vitest';
import { loadKvmAddon } from '../../hypervisors/kvm/addon.ts';
import type { IoeventfdSpec } from '../../hypervisors/backend.ts';
import { Asm, R } from '../guests/asm.ts';
import { GUEST, TestGuest, kvmSkipReason } from '../guests/guest.ts';
import { DONE_PORT, littleEndian, runUntilDone } from '../guests/run.ts';

const skip = kvmSkipReason();
if (skip) console.warn(skip);

const DOORBELL_PORT = 0x600;
const DOORBELL_MMIO = GUEST.mmio + 0x1000;

let guest: TestGuest | undefined;
const fds: number[] = [];
afterEach(() => {
  guest?.destroy();
  guest = undefined;
  for (const fd of fds.splice(0)) loadKvmAddon().closeFd(fd);
});

function eventfd(): number {
  const fd = loadKvmAddon().eventfd(0, true);
  fds.push(fd);
  return fd;
}

/** CPL3 guest that writes `value` N times to the port doorbell and N times to the MMIO doorbell. */
function doorbellGuest(n: number, value: number): TestGuest {
  const a = new Asm(64, GUEST.code)
    .movImm(R.edx, DOORBELL_PORT).movImm(R.ebx, DOORBELL_MMIO).movImm(R.eax, value).movImm(R.ecx, n)
    .label('loop').outDx(4).store(R.ebx, R.eax, 4).dec(R.ecx).jnz('loop')
    .out(DONE_PORT, 1);
  const g = new TestGuest({ mode: 'long64' });
  g.load(a);
  g.start(GUEST.code);
  g.enterUserMode(GUEST.code);
  return g;
}

describe.skipIf(skip)('ioeventfd', () => {
  test('port and MMIO doorbells signal their eventfds without a single exit to the VMM', () => {
    const N = 1000;
    guest = doorbellGuest(N, 1);
    const pio = eventfd();
    const mmio = eventfd();
    guest.vm.assignIoeventfd({ address: DOORBELL_PORT, length: 4, pio: true, fd: pio });
    guest.vm.assignIoeventfd({ address: DOORBELL_MMIO, length: 4, pio: false, fd: mmio });

    const { exits } = runUntilDone(guest, {}); // any port or MMIO exit besides DONE fails the test
    expect(exits).toBe(1);
    const addon = loadKvmAddon();
    expect(addon.eventfdRead(pio)).toBe(N);
    expect(addon.eventfdRead(mmio)).toBe(N);
    expect(addon.eventfdRead(pio)).toBe(-1); // reading resets the counter
  });

  test('datamatch: only the matching value signals; other values exit to the VMM', () => {
    guest = doorbellGuest(3, 8);
    const pio = eventfd();
    const spec: IoeventfdSpec = { address: DOORBELL_PORT, length: 4, pio: true, fd: pio, datamatch: 7n };
    guest.vm.assignIoeventfd(spec);
    const seen: number[] = [];
    const { exits } = runUntilDone(guest, {
      io(exit) { seen.push(littleEndian(exit.data)); },
      mmio() { /* the MMIO doorbell is not registered here */ },
    });
    expect(seen).toEqual([8, 8, 8]);
    expect(exits).toBe(3 + 3 + 1);
    expect(loadKvmAddon().eventfdRead(pio)).toBe(-1);
  });

  test('after deassign the doorbell exits to the VMM again', () => {
    guest = doorbellGuest(2, 1);
    const pio = eventfd();
    const spec: IoeventfdSpec = { address: DOORBELL_PORT, length: 4, pio: true, fd: pio };
    guest.vm.assignIoeventfd(spec);
    guest.vm.deassignIoeventfd(spec);
    let portExits = 0;
    runUntilDone(guest, { io() { portExits++; }, mmio() {} });
    expect(portExits).toBe(2);
    expect(loadKvmAddon().eventfdRead(pio)).toBe(-1);
  });

  test('length 0 matches MMIO writes of any size', () => {
    const a = new Asm(64, GUEST.code).movImm(R.ebx, DOORBELL_MMIO).movImm(R.eax, 1);
    for (const size of [1, 2, 4, 8] as const) a.store(R.ebx, R.eax, size);
    a.out(DONE_PORT, 1);
    guest = new TestGuest({ mode: 'long64' });
    guest.load(a);
    guest.start(GUEST.code);
    guest.enterUserMode(GUEST.code);
    const fd = eventfd();
    guest.vm.assignIoeventfd({ address: DOORBELL_MMIO, length: 0, pio: false, fd });
    expect(runUntilDone(guest, {}).exits).toBe(1);
    expect(loadKvmAddon().eventfdRead(fd)).toBe(4);
  });

  test('bad ioeventfd specs are refused with a reason', () => {
    guest = doorbellGuest(1, 1);
    const fd = eventfd();
    expect(() => guest!.vm.assignIoeventfd({ address: DOORBELL_PORT, length: 3, pio: true, fd })).toThrow(/length 3: use 1, 2, 4, 8, or 0/);
    expect(() => guest!.vm.assignIoeventfd({ address: DOORBELL_MMIO, length: 0, pio: false, fd, datamatch: 1n })).toThrow(/cannot match data/);
  });

  test('registering the same doorbell twice fails with an error naming KVM_IOEVENTFD and EEXIST', () => {
    guest = doorbellGuest(1, 1);
    const spec: IoeventfdSpec = { address: DOORBELL_PORT, length: 4, pio: true, fd: eventfd() };
    guest.vm.assignIoeventfd(spec);
    expect(() => guest!.vm.assignIoeventfd(spec)).toThrow('KVM_IOEVENTFD failed: EEXIST (File exists)');
  });
});
