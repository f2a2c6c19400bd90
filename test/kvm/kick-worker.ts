// vCPU worker for kick.test.ts: runs a CPL3 guest that increments a counter in guest RAM
// forever, and reports each return from run() (which only a kick can cause).
import { parentPort, workerData } from 'node:worker_threads';
import { ExitReasonName } from '../../hypervisors/backend.ts';
import { Asm, R } from '../guests/asm.ts';
import { GUEST, TestGuest } from '../guests/guest.ts';

export interface KickWorkerData { rounds: number; safetyTimeoutMs: number }

const { rounds, safetyTimeoutMs } = workerData.data as KickWorkerData;
const port = parentPort!;
const guest = new TestGuest({ mode: 'long64' });
try {
  guest.load(new Asm(64, GUEST.code).movImm(R.ebx, GUEST.data).label('loop').incMem(R.ebx).jmp('loop'));
  guest.start(GUEST.code);
  guest.enterUserMode(GUEST.code);
  const ram = guest.vm.ram[0]!;
  port.postMessage({ type: 'ready', token: guest.vcpu.kickToken(), ramFd: ram.fd, ramSize: ram.size, counter: GUEST.data });
  for (let round = 0; round < rounds; round++) {
    // Only a safety net, far beyond the test's own timeout, so a broken kick fails the test
    // instead of leaving a thread stuck in KVM_RUN forever.
    guest.vcpu.armKickTimer(safetyTimeoutMs);
    const reason = guest.vcpu.run();
    guest.vcpu.armKickTimer(0);
    port.postMessage({ type: 'returned', round, reason: ExitReasonName[reason], counter: guest.memory.readU32(GUEST.data) });
  }
} catch (e) {
  port.postMessage({ type: 'error', message: (e as Error).stack });
} finally {
  guest.destroy();
}
