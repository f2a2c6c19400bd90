// virtio-blk (virtio 1.x §5.2) over a raw image file: read, write, flush (fsync) and get-id,
// with the FLUSH, SEG_MAX and BLK_SIZE features and an optional read-only mode. Requests are
// served synchronously from the queue notification: this process exists only for this disk.
// A process that takes over from one that died fails what the guest had outstanding (resume).
import { fstatSync, fsyncSync, readSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import type { DeviceContext, VirtioDevice } from '../../virtio/mmio-transport.ts';
import { VIRTIO_F_VERSION_1 } from '../../virtio/mmio-transport.ts';
import type { Buffer, Chain, SplitQueue } from '../../virtio/queue.ts';
import { QueueError } from '../../virtio/queue.ts';

export const VIRTIO_ID_BLOCK = 2;
export const BlkFeature = { SEG_MAX: 1n << 2n, RO: 1n << 5n, BLK_SIZE: 1n << 6n, FLUSH: 1n << 9n } as const;
export const BlkType = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8 } as const;
export const BlkStatus = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;
export const SECTOR = 512;
export const QUEUE_SIZE = 128;
const ID_BYTES = 20;

export interface BlkOptions {
  fd: number;
  path: string;
  readonly: boolean;
  log(message: string): void;
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly features: bigint;
  readonly queueSizes = [QUEUE_SIZE];
  readonly capacityBytes: number;
  private readonly config = new DataView(new ArrayBuffer(24));
  private queue: SplitQueue | undefined;
  private ctx: DeviceContext | undefined;
  private readonly id: Uint8Array;

  constructor(private readonly opts: BlkOptions) {
    const size = fstatSync(opts.fd).size;
    this.capacityBytes = size - (size % SECTOR);
    this.features = VIRTIO_F_VERSION_1 | BlkFeature.SEG_MAX | BlkFeature.BLK_SIZE | BlkFeature.FLUSH | (opts.readonly ? BlkFeature.RO : 0n);
    this.config.setBigUint64(0, BigInt(this.capacityBytes / SECTOR), true); // capacity in 512-byte sectors
    this.config.setUint32(12, QUEUE_SIZE - 2, true); // seg_max: header and status take two descriptors
    this.config.setUint32(20, SECTOR, true); // blk_size
    this.id = new TextEncoder().encode(`tsvmm-${basename(opts.path)}`).slice(0, ID_BYTES);
  }

  readConfig(offset: number, size: number): number {
    if (offset + size > this.config.byteLength) return 0;
    return size === 1 ? this.config.getUint8(offset) : size === 2 ? this.config.getUint16(offset, true) : this.config.getUint32(offset, true);
  }

  writeConfig(): void {
    // every field we expose is read-only (no WCE / CONFIG_WCE)
  }

  activate(queues: readonly SplitQueue[], _features: bigint, ctx: DeviceContext): void {
    this.queue = queues[0];
    this.ctx = ctx;
  }

  reset(): void {
    this.queue = undefined;
    this.ctx = undefined;
  }

  notify(): void {
    const q = this.queue;
    const ctx = this.ctx;
    if (!q || !ctx) return;
    let served = 0;
    for (let chain = q.pop(); chain; chain = q.pop()) {
      q.push(chain.head, this.serve(chain.buffers, ctx));
      served++;
    }
    if (served && !q.interruptSuppressed) ctx.signalUsed();
  }

  /**
   * This process replaced one that died while the guest was using the disk. The requests that
   * process held may be half done, and the ones queued meanwhile went to a device that was gone:
   * all of them complete with IOERR, so the guest sees the failure instead of waiting forever
   * (Linux's virtio-blk has no request timeout). Requests from now on are served as usual.
   */
  resume(orphans: readonly Chain[][]): void {
    const q = this.queue;
    const ctx = this.ctx;
    if (!q || !ctx) return;
    let failed = 0;
    const fail = (c: Chain) => {
      ctx.mem.range(statusByte(c.buffers), 1)[0] = BlkStatus.IOERR;
      q.push(c.head, 1);
      failed++;
    };
    orphans[0]?.forEach(fail);
    for (let c = q.pop(); c; c = q.pop()) fail(c);
    if (!failed) return;
    this.opts.log(`completed the ${failed} request${failed === 1 ? '' : 's'} outstanding when the previous process died with IOERR`);
    ctx.signalUsed();
  }

  /** One request; returns the bytes written into the chain (data + status). */
  private serve(buffers: readonly Buffer[], ctx: DeviceContext): number {
    const mem = ctx.mem;
    const statusAddr = statusByte(buffers);
    const header = new Uint8Array(16);
    let got = 0;
    const data: Buffer[] = [];
    for (const b of buffers) {
      if (!b.writable && got < 16) {
        const n = Math.min(16 - got, b.len);
        header.set(mem.range(b.addr, n), got);
        got += n;
        if (n < b.len) data.push({ addr: b.addr + n, len: b.len - n, writable: false });
      } else {
        data.push(b);
      }
    }
    // The status byte is not data.
    const last = data[data.length - 1]!;
    if (last.len === 1) data.pop();
    else data[data.length - 1] = { ...last, len: last.len - 1 };
    const setStatus = (s: number, written: number) => {
      mem.range(statusAddr, 1)[0] = s;
      return written + 1;
    };
    if (got < 16) return setStatus(BlkStatus.IOERR, 0);
    const h = new DataView(header.buffer);
    const type = h.getUint32(0, true);
    const sector = h.getBigUint64(8, true);
    try {
      switch (type) {
        case BlkType.IN: return setStatus(...this.transfer(data, sector, false, mem));
        case BlkType.OUT:
          if (this.opts.readonly) return setStatus(BlkStatus.IOERR, 0);
          return setStatus(...this.transfer(data, sector, true, mem));
        case BlkType.FLUSH:
          if (!this.opts.readonly) fsyncSync(this.opts.fd);
          return setStatus(BlkStatus.OK, 0);
        case BlkType.GET_ID: {
          const out = data.find((b) => b.writable);
          if (!out) return setStatus(BlkStatus.IOERR, 0);
          const id = new Uint8Array(ID_BYTES);
          id.set(this.id);
          const n = Math.min(out.len, ID_BYTES);
          mem.range(out.addr, n).set(id.subarray(0, n));
          return setStatus(BlkStatus.OK, n);
        }
        default:
          return setStatus(BlkStatus.UNSUPP, 0);
      }
    } catch (e) {
      if (e instanceof QueueError) throw e;
      this.opts.log(`I/O error on ${this.opts.path}: ${(e as Error).message}`);
      return setStatus(BlkStatus.IOERR, 0);
    }
  }

  /** Read (IN) into writable buffers or write (OUT) from readable ones. */
  private transfer(data: readonly Buffer[], sector: bigint, write: boolean, mem: DeviceContext['mem']): [number, number] {
    const bufs = data.filter((b) => b.writable !== write);
    if (bufs.length !== data.length) return [BlkStatus.IOERR, 0]; // wrong-direction data buffers
    const total = bufs.reduce((n, b) => n + b.len, 0);
    const start = sector * BigInt(SECTOR);
    if (total % SECTOR !== 0 || start + BigInt(total) > BigInt(this.capacityBytes)) return [BlkStatus.IOERR, 0];
    let pos = Number(start);
    for (const b of bufs) {
      const view = mem.range(b.addr, b.len);
      let done = 0;
      while (done < b.len) {
        const n = write ? writeSync(this.opts.fd, view, done, b.len - done, pos + done) : readSync(this.opts.fd, view, done, b.len - done, pos + done);
        if (n <= 0) return [BlkStatus.IOERR, 0];
        done += n;
      }
      pos += b.len;
    }
    return [BlkStatus.OK, write ? 0 : total];
  }
}

/** Where a request's status goes: the last byte of its last buffer, which must be device-writable. */
function statusByte(buffers: readonly Buffer[]): number {
  const b = buffers[buffers.length - 1];
  if (!b || !b.writable || b.len < 1) throw new QueueError('block request has no writable status byte');
  return b.addr + b.len - 1;
}
