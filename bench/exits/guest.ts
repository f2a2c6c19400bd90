// The bench/exits guest: long mode at CPL3 (native on this project's hosts), built with the
// test-guest tools, looping N times over one kind of access and then writing DONE_PORT.
// The same guest state is saved as an image for the C floor, so both sides run identical code.
import { writeFileSync } from 'node:fs';
import { encodeRegs, encodeSregs, REGS_SIZE, SREGS_SIZE } from '../../hypervisors/kvm/structs.ts';
import { Asm, R } from '../../test/guests/asm.ts';
import { GUEST, TestGuest } from '../../test/guests/guest.ts';
import { DONE_PORT } from '../../test/guests/run.ts';

export type Workload = 'pio' | 'mmio' | 'ioeventfd';
export const WORKLOADS: readonly Workload[] = ['pio', 'mmio', 'ioeventfd'];

/** Port written by the pio workload (one exit each). */
export const EXIT_PORT = 0x510;
/** Port written by the ioeventfd workload (registered as an ioeventfd: no exit). */
export const DOORBELL_PORT = 0x600;
/** Address read by the mmio workload: no RAM there, so every read exits. */
export const MMIO_ADDRESS = GUEST.mmio;

export function buildGuest(workload: Workload, iterations: number): TestGuest {
  const a = new Asm(64, GUEST.code).movImm(R.ecx, iterations).movImm(R.ebx, MMIO_ADDRESS)
    .movImm(R.edx, workload === 'ioeventfd' ? DOORBELL_PORT : EXIT_PORT).movImm(R.eax, 1)
    .label('loop');
  if (workload === 'mmio') a.load(R.eax, R.ebx, 4);
  else a.outDx(1);
  a.dec(R.ecx).jnz('loop').out(DONE_PORT, 1);

  const guest = new TestGuest({ mode: 'long64' });
  guest.load(a);
  guest.start(GUEST.code);
  guest.enterUserMode(GUEST.code);
  return guest;
}

/**
 * The guest as the C floor loads it: "TSVMMIMG", u64 RAM size, struct kvm_regs, struct
 * kvm_sregs, then RAM from guest-physical 0.
 */
export function writeImage(guest: TestGuest, path: string): void {
  const ram = guest.vm.ram[0]!;
  const header = new Uint8Array(16 + REGS_SIZE + SREGS_SIZE);
  header.set(new TextEncoder().encode('TSVMMIMG'));
  new DataView(header.buffer).setBigUint64(8, BigInt(ram.size), true);
  encodeRegs(guest.vcpu.getRegs(), header.subarray(16, 16 + REGS_SIZE));
  encodeSregs(guest.vcpu.getSregs(), header.subarray(16 + REGS_SIZE));
  const image = new Uint8Array(header.length + ram.size);
  image.set(header);
  image.set(ram.bytes, header.length);
  writeFileSync(path, image);
}

export { DONE_PORT };
