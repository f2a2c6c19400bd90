// virtio-console (virtio 1.x §5.3), one port, no multiport: the guest's hvc0. Transmitted bytes
// go to `output`; `input` bytes wait until the driver posts receive buffers.
import type { DeviceContext, VirtioDevice } from '../../virtio/mmio-transport.ts';
import { VIRTIO_F_VERSION_1 } from '../../virtio/mmio-transport.ts';
import type { SplitQueue } from '../../virtio/queue.ts';
import { readChain } from '../../virtio/queue.ts';

export const VIRTIO_ID_CONSOLE = 3;
const RX = 0;
const TX = 1;
/** Input held while the guest is not reading; beyond this, older keystrokes are dropped. */
const MAX_PENDING_INPUT = 64 * 1024;

export class VirtioConsole implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_CONSOLE;
  readonly features = VIRTIO_F_VERSION_1;
  readonly queueSizes = [64, 64];
  private queues: readonly SplitQueue[] = [];
  private ctx: DeviceContext | undefined;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  constructor(private readonly output: (bytes: Uint8Array) => void) {}

  readConfig(): number {
    return 0; // no F_SIZE, no F_MULTIPORT: the config space is unused
  }

  writeConfig(): void {}

  activate(queues: readonly SplitQueue[], _features: bigint, ctx: DeviceContext): void {
    this.queues = queues;
    this.ctx = ctx;
    this.fill();
  }

  reset(): void {
    this.queues = [];
    this.ctx = undefined;
  }

  notify(index: number): void {
    if (index === TX) this.drainTx();
    else if (index === RX) this.fill();
  }

  input(bytes: Uint8Array): void {
    this.pending.push(bytes.slice());
    this.pendingBytes += bytes.length;
    while (this.pendingBytes > MAX_PENDING_INPUT) this.pendingBytes -= this.pending.shift()!.length;
    this.fill();
  }

  private drainTx(): void {
    const q = this.queues[TX];
    if (!q || !this.ctx) return;
    let n = 0;
    for (let c = q.pop(); c; c = q.pop()) {
      const bytes = readChain(this.ctx.mem, c.buffers);
      if (bytes.length) this.output(bytes);
      q.push(c.head, 0);
      n++;
    }
    if (n && !q.interruptSuppressed) this.ctx.signalUsed();
  }

  /** Move pending input into the driver's receive buffers. */
  private fill(): void {
    const q = this.queues[RX];
    if (!q || !this.ctx || this.pendingBytes === 0) return;
    let n = 0;
    while (this.pendingBytes > 0) {
      const c = q.pop();
      if (!c) break;
      let written = 0;
      for (const b of c.buffers) {
        if (!b.writable) continue;
        let off = 0;
        while (off < b.len && this.pending.length) {
          const head = this.pending[0]!;
          const k = Math.min(head.length, b.len - off);
          this.ctx.mem.range(b.addr + off, k).set(head.subarray(0, k));
          off += k;
          this.pendingBytes -= k;
          if (k === head.length) this.pending.shift();
          else this.pending[0] = head.subarray(k);
        }
        written += off;
      }
      q.push(c.head, written);
      n++;
    }
    if (n && !q.interruptSuppressed) this.ctx.signalUsed();
  }
}
