// The interpreter against the real CPU: every implemented opcode form (minus the documented
// exclusions), random streams and fault cases, compared with KVM executing the same cases
// natively at CPL3. Prints the coverage line; any disagreement fails with its reproducer.
import { expect, test } from 'vitest';
import { kvmSkipReason } from '../guests/guest.ts';
import { haveAssembler } from './asm.ts';
import { differential } from './diff.ts';
import { haveQemu } from './qemu.ts';

const skip = !haveAssembler() ? 'GNU as/ld missing (apt-get install binutils): differential test skipped' : kvmSkipReason();
if (skip) console.warn(`SKIP: ${skip}`);

test.skipIf(skip)('interpreter agrees with the real CPU on every implemented form', async () => {
  const lines: string[] = [];
  const r = await differential({ seed: 1, perForm: 12, streams: 1000, log: (s) => lines.push(s) });
  console.log(lines.filter((l) => l.startsWith('coverage') || l.startsWith('implemented')).join('\n'));
  expect(r.skipped).toBeUndefined();
  expect(r.disagreements.map((d) => d.text)).toEqual([]);
  // Every implemented form is either compared or excluded with a stated reason.
  expect(r.tested + r.excluded).toBe(r.implemented);
  // Every implemented form is compared by an oracle or checked against the SDM (cpu.test.ts).
  expect(r.uncovered).toEqual([]);
}, 300_000);

const qemuSkip = !haveAssembler() ? 'GNU as/ld missing' : !haveQemu() ? 'qemu-system-i386 missing (apt-get install qemu-system-x86): QEMU differential test skipped' : undefined;
if (qemuSkip) console.warn(`SKIP: ${qemuSkip}`);

test.skipIf(qemuSkip)('interpreter agrees with QEMU TCG in 32-bit protected mode, kernel-mode set-up and ring transitions included', async () => {
  const lines: string[] = [];
  const r = await differential({ seed: 1, perForm: 12, streams: 1000, log: (s) => lines.push(s), oracle: 'qemu' });
  console.log(lines.filter((l) => l.startsWith('coverage')).join('\n'));
  expect(r.disagreements.map((d) => d.text)).toEqual([]);
  expect(r.tested + r.excluded).toBe(r.implemented);
  // Every implemented form is compared by an oracle or checked against the SDM (cpu.test.ts).
  expect(r.uncovered).toEqual([]);
}, 300_000);
