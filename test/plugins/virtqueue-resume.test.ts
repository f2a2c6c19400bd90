// Taking a split virtqueue over from a process that died (devices/virtio/queue.ts resume() and
// transport-state.ts). Here a "process" is a SplitQueue over shared state bytes, and a SIGKILL
// between two of its stores is reproduced by making exactly the stores that would have landed.
// The real processes are killed in plugin-restart tests (virtio-blk.test.ts, linux-guest.test.ts).
import { describe, expect, test } from 'vitest';
import { DESC_F_NEXT, DESC_F_WRITE, QueueError, SplitQueue } from '../../devices/virtio/queue.ts';
import { TransportState } from '../../devices/virtio/transport-state.ts';
import { GuestMemory } from '../../base/guest-memory.ts';

const SIZE = 8;
const DESC = 0x1000;
const AVAIL = 0x2000;
const USED = 0x3000;
const BUF = 0x4000;

class Rings {
  readonly mem = new GuestMemory([{ guestPhys: 0, bytes: new Uint8Array(0x10000) }]);
  private readonly v = new DataView(this.mem.range(0, 0x10000).buffer);
  private availIdx = 0;

  /** The driver offers a two-descriptor chain (readable, then writable) at `head`. */
  offer(head: number): void {
    this.v.setBigUint64(DESC + 16 * head, BigInt(BUF + 0x100 * head), true);
    this.v.setUint32(DESC + 16 * head + 8, 16, true);
    this.v.setUint16(DESC + 16 * head + 12, DESC_F_NEXT, true);
    this.v.setUint16(DESC + 16 * head + 14, head + 1, true);
    this.v.setBigUint64(DESC + 16 * (head + 1), BigInt(BUF + 0x100 * head + 0x80), true);
    this.v.setUint32(DESC + 16 * (head + 1) + 8, 1, true);
    this.v.setUint16(DESC + 16 * (head + 1) + 12, DESC_F_WRITE, true);
    this.v.setUint16(AVAIL + 4 + 2 * (this.availIdx % SIZE), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.v.setUint16(AVAIL + 2, this.availIdx, true);
  }

  get usedIdx(): number {
    return this.v.getUint16(USED + 2, true);
  }

  set usedIdx(i: number) {
    this.v.setUint16(USED + 2, i, true);
  }

  used(i: number): number {
    return this.v.getUint32(USED + 4 + 8 * (i % SIZE), true);
  }
}

/** One process's view: its state (inherited or not) and its queue. */
function attach(rings: Rings, stateBytes: Uint8Array, deviceId = 2): { state: TransportState; q: SplitQueue } {
  const state = new TransportState(stateBytes, deviceId, [SIZE]);
  const q = new SplitQueue(rings.mem, { size: SIZE, descAddr: DESC, availAddr: AVAIL, usedAddr: USED }, SIZE, state.progress(0));
  return { state, q };
}

const newState = () => new Uint8Array(TransportState.bytesNeeded([SIZE]));

/** A first process with a started queue, and the driver having offered chains at `heads`. */
function started(heads: number[]) {
  const rings = new Rings();
  const bytes = newState();
  const first = attach(rings, bytes);
  first.q.start();
  heads.forEach((h) => rings.offer(h));
  return { rings, bytes, first };
}

describe('taking a virtqueue over from a dead process', () => {
  test('chains taken and not returned come back from resume(); untaken ones stay available, none twice', () => {
    const rings = new Rings();
    const bytes = newState();
    const first = attach(rings, bytes);
    expect(first.state.inherited).toBe(false);
    first.q.start();
    rings.offer(0);
    rings.offer(2);
    rings.offer(4);
    expect(first.q.pop()!.head).toBe(0);
    first.q.push(0, 1);
    expect(first.q.pop()!.head).toBe(2); // the process dies holding 2; 4 was never taken

    const second = attach(rings, bytes);
    expect(second.state.inherited).toBe(true);
    const orphans = second.q.resume();
    expect(orphans.map((c) => c.head)).toEqual([2]);
    expect(orphans[0]!.buffers).toEqual([
      { addr: BUF + 0x200, len: 16, writable: false },
      { addr: BUF + 0x280, len: 1, writable: true },
    ]);
    second.q.push(2, 1);
    expect(second.q.pop()!.head).toBe(4);
    second.q.push(4, 1);
    expect(second.q.pop()).toBeUndefined();
    expect([rings.used(0), rings.used(1), rings.used(2)]).toEqual([0, 2, 4]);
    expect(rings.usedIdx).toBe(3);
  });

  test('killed inside pop(), after recording the head as held but before the take: returned once, not popped again', () => {
    const { rings, bytes, first } = started([0, 2]);
    first.state.progress(0).hold(0); // pop()'s first store; lastAvail never advanced

    const second = attach(rings, bytes);
    expect(second.q.resume().map((c) => c.head)).toEqual([0]);
    second.q.push(0, 1);
    expect(second.q.pop()!.head).toBe(2);
    expect(second.q.pop()).toBeUndefined();
  });

  test('killed inside push(), after publishing the used entry but before recording it: not returned again', () => {
    const { rings, bytes, first } = started([0, 2]);
    expect(first.q.pop()!.head).toBe(0);
    expect(first.q.pop()!.head).toBe(2);
    first.q.push(2, 1);
    // Undo push()'s bookkeeping stores, which come after the publish.
    const p = first.state.progress(0);
    p.hold(2);
    p.usedIdx = 0;

    const second = attach(rings, bytes);
    expect(second.q.resume().map((c) => c.head)).toEqual([0]); // 2 was already in the used ring
    second.q.push(0, 1);
    expect([rings.used(0), rings.used(1)]).toEqual([2, 0]);
    expect(rings.usedIdx).toBe(2);
  });

  test('a used index that moved while no process was attached is a device error', () => {
    const rings = new Rings();
    const bytes = newState();
    attach(rings, bytes).q.start();
    rings.usedIdx = 5; // only the device writes it: the guest scribbled on its own ring
    expect(() => attach(rings, bytes).q.resume()).toThrow(QueueError);
  });

  test('state left by another kind of device is not inherited', () => {
    const rings = new Rings();
    const bytes = newState();
    const first = attach(rings, bytes, 3);
    first.q.start();
    rings.offer(0);
    first.q.pop();
    const second = attach(rings, bytes, 2);
    expect(second.state.inherited).toBe(false);
    expect(second.state.progress(0).held()).toEqual([]);
  });
});
