// Port I/O and MMIO exits through the KVM backend, in 32-bit protected mode and 64-bit long
// mode, at CPL0 and CPL3: every access size, reads answered by the VMM and checked by the
// guest (it writes back what it read), and string I/O.
import { afterEach, describe, expect, test } from 'vitest';
import { Asm, R, type Size } from '../guests/asm.ts';
import { GUEST, TestGuest, kvmSkipReason } from '../guests/guest.ts';
import { DONE_PORT, littleEndian, littleEndianBig, putLittleEndian, runUntilDone } from '../guests/run.ts';
import type { CpuMode } from '../../firmware/entry/index.ts';

const skip = kvmSkipReason();
if (skip) console.warn(skip);

const MODES: { mode: CpuMode; cpl: 0 | 3 }[] = [
  { mode: 'protected32', cpl: 0 }, { mode: 'protected32', cpl: 3 },
  { mode: 'long64', cpl: 0 }, { mode: 'long64', cpl: 3 },
];

let guest: TestGuest | undefined;
afterEach(() => { guest?.destroy(); guest = undefined; });

/** Start `asm` at GUEST.code in the requested mode and privilege. */
function boot(mode: CpuMode, cpl: 0 | 3, asm: Asm): TestGuest {
  const g = new TestGuest({ mode });
  g.load(asm);
  g.start(GUEST.code);
  if (cpl === 3) g.enterUserMode(GUEST.code);
  return g;
}

const bits = (mode: CpuMode) => (mode === 'long64' ? 64 : 32);

interface Access { address: number; size: number; write: boolean; value: bigint }

describe.skipIf(skip)('KVM exits', () => {
  describe.each(MODES)('$mode at CPL$cpl', ({ mode, cpl }) => {
    test('port I/O of 1, 2 and 4 bytes; IN answered by the VMM, echoed back by the guest', () => {
      const IO_PORT = 0x510;
      const ECHO_PORT = 0x520;
      const written = { 1: 0x5a, 2: 0xbeef, 4: 0xcafe_f00d } as const;
      const answer = { 1: 0xa5, 2: 0x1234, 4: 0x8765_4321 } as const;
      const a = new Asm(bits(mode), GUEST.code);
      for (const size of [1, 2, 4] as const) {
        a.movImm(R.edx, IO_PORT + size).movImm(R.eax, written[size]).outDx(size)
          .xor(R.eax, R.eax).inDx(size)
          .movImm(R.edx, ECHO_PORT + size).outDx(size);
      }
      a.movImm(R.eax, 0x99).out(0xe4, 1).out(DONE_PORT, 1);
      guest = boot(mode, cpl, a);

      const log: Access[] = [];
      runUntilDone(guest, {
        io(exit) {
          expect(exit.count).toBe(1);
          expect(exit.data.length).toBe(exit.size);
          if (!exit.write) putLittleEndian(exit.data, BigInt(answer[exit.size as 1 | 2 | 4]));
          log.push({ address: exit.address, size: exit.size, write: exit.write, value: littleEndianBig(exit.data) });
        },
      });
      const expected: Access[] = [];
      for (const size of [1, 2, 4] as const) {
        expected.push(
          { address: IO_PORT + size, size, write: true, value: BigInt(written[size]) },
          { address: IO_PORT + size, size, write: false, value: BigInt(answer[size]) },
          { address: ECHO_PORT + size, size, write: true, value: BigInt(answer[size]) },
        );
      }
      expected.push({ address: 0xe4, size: 1, write: true, value: 0x99n });
      expect(log).toEqual(expected);
      expect(guest.vcpu.getSregs().cs.dpl).toBe(cpl);
    });

    test(`MMIO of every size (${mode === 'long64' ? '1, 2, 4, 8' : '1, 2, 4'} bytes); reads answered by the VMM and echoed`, () => {
      const sizes: Size[] = mode === 'long64' ? [1, 2, 4, 8] : [1, 2, 4];
      const pattern = (size: Size) => BigInt.asUintN(size * 8, 0x1122_3344_5566_7788n + BigInt(size));
      const answer = (size: Size) => BigInt.asUintN(size * 8, 0xf0e1_d2c3_b4a5_9687n - BigInt(size));
      const a = new Asm(bits(mode), GUEST.code).movImm(R.ebx, GUEST.mmio);
      for (const size of sizes) {
        a.movImm(R.eax, pattern(size), size === 8 ? 8 : 4)
          .store(R.ebx, R.eax, size, size * 0x10)
          .xor(R.eax, R.eax)
          .load(R.eax, R.ebx, size, size * 0x10 + 8)
          .store(R.ebx, R.eax, size, 0x100 + size * 0x10);
      }
      a.out(DONE_PORT, 1);
      guest = boot(mode, cpl, a);

      const log: Access[] = [];
      runUntilDone(guest, {
        mmio(exit) {
          expect(exit.data.length).toBe(exit.size);
          if (!exit.write) putLittleEndian(exit.data, answer(exit.size as Size));
          log.push({ address: exit.address, size: exit.size, write: exit.write, value: littleEndianBig(exit.data) });
        },
      });
      expect(log).toEqual(sizes.flatMap((size) => [
        { address: GUEST.mmio + size * 0x10, size, write: true, value: pattern(size) },
        { address: GUEST.mmio + size * 0x10 + 8, size, write: false, value: answer(size) },
        { address: GUEST.mmio + 0x100 + size * 0x10, size, write: true, value: answer(size) },
      ]));
      expect(guest.vcpu.getSregs().cs.dpl).toBe(cpl);
    });

    test('string I/O: rep outsb, rep outsw and rep insb', () => {
      const STRING_PORT = 0x530;
      const text = new TextEncoder().encode('Hello from a bare-metal guest via rep outsb!\n');
      const words = [0x1111, 0x2222, 0x3333];
      const input = new TextEncoder().encode('typed in');
      const a = new Asm(bits(mode), GUEST.code)
        .movImm(R.edx, STRING_PORT)
        .movImm(R.esi, GUEST.data).movImm(R.ecx, text.length).repOuts(1)
        .movImm(R.esi, GUEST.data + 0x100).movImm(R.ecx, words.length).repOuts(2)
        .movImm(R.edi, GUEST.data + 0x200).movImm(R.ecx, input.length).repIns(1)
        .out(DONE_PORT, 1);
      guest = boot(mode, cpl, a);
      guest.memory.write(GUEST.data, text);
      words.forEach((w, i) => guest!.memory.range(GUEST.data + 0x100 + 2 * i, 2).set([w & 0xff, w >> 8]));

      const bytesOut: number[] = [];
      const wordsOut: number[] = [];
      let fed = 0;
      runUntilDone(guest, {
        io(exit) {
          expect(exit.address).toBe(STRING_PORT);
          expect(exit.data.length).toBe(exit.size * exit.count);
          if (exit.write && exit.size === 1) bytesOut.push(...exit.data);
          else if (exit.write && exit.size === 2) {
            for (let i = 0; i < exit.count; i++) wordsOut.push(littleEndian(exit.data.subarray(2 * i, 2 * i + 2)));
          } else {
            exit.data.set(input.subarray(fed, fed + exit.count));
            fed += exit.count;
          }
        },
      });
      expect(new TextDecoder().decode(Uint8Array.from(bytesOut))).toBe(new TextDecoder().decode(text));
      expect(wordsOut).toEqual(words);
      expect(guest.memory.read(GUEST.data + 0x200, input.length)).toEqual(input);
      expect(guest.vcpu.getSregs().cs.dpl).toBe(cpl);
    });
  });
});
