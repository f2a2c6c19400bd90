// The KVM backend as the VMM sees it before opening it (backend.ts, BackendDescriptor).
import type { BackendDescriptor } from '../backend.ts';
import { IOAPIC, LAPIC_MSI } from '../../base/memory-map.ts';
import { startTsWorker } from '../../base/worker.ts';
import type { OpenKvmOptions } from './kvm.ts';
import type { ProbeResult } from './probe.ts';

/** The KVM device; TSVMM_KVM_DEVICE overrides it (a KVM in a container, or a test without KVM). */
function kvmDevice(): string {
  return process.env.TSVMM_KVM_DEVICE || '/dev/kvm';
}

/** The probe runs a tiny guest, and KVM_RUN never runs on the main thread: it gets a worker. */
async function probeOffThread(path: string): Promise<ProbeResult> {
  const worker = startTsWorker(new URL('./probe-worker.ts', import.meta.url), { workerData: path });
  try {
    return await new Promise<ProbeResult>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the KVM probe exited with code ${code}`)));
    });
  } finally {
    await worker.terminate();
  }
}

export const KVM: BackendDescriptor = {
  name: 'kvm',
  title: 'KVM',
  longMode: true,
  // The in-kernel irqchip handles HLT: a guest halted for good never exits (backend.ts).
  hltNeedsPolling: true,
  deterministicClock: false,
  kernelArgs: [],
  guest: { archs: ['x86_64', 'i386'], cpu: 'x86', kernel: 'bzImage', initrd: 'gzip', needs: 'on a host with hardware virtualization' },
  // KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 (kvm.ts) put these in the kernel.
  claims: [
    { bus: 'pio', start: 0x20, size: 2, name: 'master 8259 PIC (in KVM)' },
    { bus: 'pio', start: 0xa0, size: 2, name: 'slave 8259 PIC (in KVM)' },
    { bus: 'pio', start: 0x4d0, size: 2, name: '8259 ELCR (in KVM)' },
    { bus: 'pio', start: 0x40, size: 4, name: '8254 PIT (in KVM)' },
    { bus: 'pio', start: 0x61, size: 1, name: 'PC speaker port (in KVM)' },
    { bus: 'mmio', ...IOAPIC, name: 'IOAPIC (in KVM)' },
    { bus: 'mmio', ...LAPIC_MSI, name: 'LAPIC and MSI window (in KVM)' },
  ],
  async probe() {
    const path = kvmDevice();
    const p = await probeOffThread(path);
    const openOptions: OpenKvmOptions = { path, nativeKernelMode: p.nativeKernelMode };
    return { available: p.available, runsLinux: p.nativeKernelMode, reason: p.reason, openOptions };
  },
  async open(options) {
    const { openKvm } = await import('./kvm.ts');
    return openKvm(options as OpenKvmOptions);
  },
};
