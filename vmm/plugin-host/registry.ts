// The VMM's one region registry, the authority on who owns a guest-physical MMIO range or a port
// range that is not RAM: the in-process platform devices (vmm/platform.ts) and the backend's own
// (its descriptor's claims) are reserved in it, and every plugin ioregion and ioeventfd is
// registered through it. It enforces KVM_SET_IOREGION's rules from ioregionfd RFC v3 plus two of
// tsvmm's own (slot confinement, per-plugin limit), and answers with the errno the plugin protocol
// returns. It does not touch the hypervisor or the dispatch table: the plugin sessions apply what
// the registry accepts.
import type { Bus, BusRange } from '../../base/memory-map.ts';
import { Errno, IoeventfdFlag, IoregionFlag } from '../../wire/protocol.ts';

export type { Bus } from '../../base/memory-map.ts';
/** Who registers: a plugin with its slot. The VMM's own devices are reserved (reserveInProcess). */
export interface RegionOwner {
  readonly name: string;
  readonly mmio: { start: number; size: number };
  readonly pio?: { start: number; size: number } | undefined;
  /** Most ioregions + ioeventfds this owner may hold. */
  readonly maxEntries: number;
}

export interface IoregionEntry {
  kind: 'ioregion';
  id: number;
  owner: RegionOwner;
  bus: Bus;
  start: number;
  /** 0 = doorbell. */
  size: number;
  userData: bigint;
  posted: boolean;
}

export interface IoeventfdEntry {
  kind: 'ioeventfd';
  id: number;
  owner: RegionOwner;
  bus: Bus;
  start: number;
  /** 0 = any access size. */
  size: number;
  datamatch: bigint | undefined;
}

export type RegistryEntry = IoregionEntry | IoeventfdEntry;

export type Result<T> = { ok: true; value: T } | { ok: false; errno: number; message: string };

const U64_LIMIT = 1n << 64n;
const PIO_LIMIT = 0x1_0000n;
/** v3 treats a zero length as 8 bytes when checking collisions. */
const ZERO_LENGTH_SPAN = 8;

export class RegionRegistry {
  private entries: RegistryEntry[] = [];
  private nextId = 1;
  /** Ranges answered by the VMM itself (its platform devices, on the vCPU worker's bus) or its backend. */
  private readonly reserved: BusRange[] = [];

  /**
   * Reserve a range answered inside the VMM process, not by a plugin: a platform device or one
   * the backend serves itself. Plugins then cannot register over it (EEXIST); a range that
   * overlaps another reserved one or a plugin's registration is refused.
   */
  reserveInProcess(bus: Bus, start: number, size: number, name: string): void {
    const other = this.reserved.find((d) => d.bus === bus && start < d.start + d.size && d.start < start + size);
    const clash = other ? `overlaps ${other.name}` : this.clashWithEntries(bus, start, size, undefined);
    if (clash) throw new Error(`${name} at 0x${start.toString(16)}: ${clash}`);
    this.reserved.push({ bus, start, size, name });
  }

  /** KVM_SET_IOREGION, assign or deassign (flags & DEASSIGN): the entry added, or the one removed. */
  ioregion(owner: RegionOwner, r: { guestPaddr: bigint; memorySize: bigint; userData: bigint; flags: number }): Result<IoregionEntry> {
    if ((r.flags & ~IoregionFlag.VALID_MASK) !== 0) return fail(Errno.EINVAL, `unknown ioregion flags 0x${r.flags.toString(16)}`);
    const bus: Bus = r.flags & IoregionFlag.PIO ? 'pio' : 'mmio';
    if (r.flags & IoregionFlag.DEASSIGN) {
      const i = this.entries.findIndex((e) => e.kind === 'ioregion' && e.owner === owner && e.bus === bus &&
        BigInt(e.start) === r.guestPaddr && BigInt(e.size) === r.memorySize);
      if (i < 0) return fail(Errno.ENOENT, `no ${bus} ioregion at 0x${r.guestPaddr.toString(16)} of size 0x${r.memorySize.toString(16)} to deassign`);
      return { ok: true, value: this.entries.splice(i, 1)[0] as IoregionEntry };
    }
    const posted = (r.flags & IoregionFlag.POSTED_WRITES) !== 0;
    if (r.memorySize === 0n && !posted) return fail(Errno.EINVAL, 'a zero-size ioregion (doorbell) needs POSTED_WRITES');
    const placed = this.place(owner, bus, r.guestPaddr, r.memorySize);
    if (!placed.ok) return placed;
    const clash = this.clash(bus, placed.value.start, placed.value.size, undefined);
    if (clash) return fail(Errno.EEXIST, clash);
    if (this.count(owner) >= owner.maxEntries) return fail(Errno.ENOSPC, `${owner.name} already holds its limit of ${owner.maxEntries} regions and ioeventfds`);
    const entry: IoregionEntry = { kind: 'ioregion', id: this.nextId++, owner, bus, start: placed.value.start, size: placed.value.size, userData: r.userData, posted };
    this.entries.push(entry);
    return { ok: true, value: entry };
  }

  /** KVM_IOEVENTFD, assign or deassign: the entry added, or the one removed. */
  ioeventfd(owner: RegionOwner, r: { addr: bigint; len: number; datamatch: bigint; flags: number }): Result<IoeventfdEntry> {
    if ((r.flags & ~IoeventfdFlag.VALID_MASK) !== 0) return fail(Errno.EINVAL, `unknown ioeventfd flags 0x${r.flags.toString(16)}`);
    if (![0, 1, 2, 4, 8].includes(r.len)) return fail(Errno.EINVAL, `ioeventfd length ${r.len} is not 0, 1, 2, 4 or 8`);
    if (r.len === 0 && r.flags & IoeventfdFlag.DATAMATCH) return fail(Errno.EINVAL, 'a zero-length ioeventfd cannot match data');
    const bus: Bus = r.flags & IoeventfdFlag.PIO ? 'pio' : 'mmio';
    const datamatch = r.flags & IoeventfdFlag.DATAMATCH ? r.datamatch : undefined;
    if (r.flags & IoeventfdFlag.DEASSIGN) {
      const i = this.entries.findIndex((e) => e.kind === 'ioeventfd' && e.owner === owner && e.bus === bus &&
        BigInt(e.start) === r.addr && e.size === r.len && e.datamatch === datamatch);
      if (i < 0) return fail(Errno.ENOENT, `no ${bus} ioeventfd at 0x${r.addr.toString(16)} to deassign`);
      return { ok: true, value: this.entries.splice(i, 1)[0] as IoeventfdEntry };
    }
    const placed = this.place(owner, bus, r.addr, BigInt(r.len));
    if (!placed.ok) return placed;
    const clash = this.clash(bus, placed.value.start, r.len, datamatch ?? null);
    if (clash) return fail(Errno.EEXIST, clash);
    if (this.count(owner) >= owner.maxEntries) return fail(Errno.ENOSPC, `${owner.name} already holds its limit of ${owner.maxEntries} regions and ioeventfds`);
    const entry: IoeventfdEntry = { kind: 'ioeventfd', id: this.nextId++, owner, bus, start: placed.value.start, size: r.len, datamatch };
    this.entries.push(entry);
    return { ok: true, value: entry };
  }

  /** Forget an entry the manager could not apply. */
  remove(entry: RegistryEntry): void {
    this.entries = this.entries.filter((e) => e !== entry);
  }

  /** Forget everything an owner registered (it disconnected); returns what was removed. */
  removeOwner(owner: RegionOwner): RegistryEntry[] {
    const gone = this.entries.filter((e) => e.owner === owner);
    this.entries = this.entries.filter((e) => e.owner !== owner);
    return gone;
  }

  list(owner?: RegionOwner): readonly RegistryEntry[] {
    return owner ? this.entries.filter((e) => e.owner === owner) : this.entries;
  }

  private count(owner: RegionOwner): number {
    return this.entries.reduce((n, e) => n + (e.owner === owner ? 1 : 0), 0);
  }

  /** Range checks: no overflow, inside the bus, inside the owner's slot. */
  private place(owner: RegionOwner, bus: Bus, start: bigint, size: bigint): Result<{ start: number; size: number }> {
    if (start + size >= U64_LIMIT) return fail(Errno.EINVAL, `0x${start.toString(16)} + 0x${size.toString(16)} overflows the address space`);
    if (bus === 'pio' && start + size > PIO_LIMIT) return fail(Errno.EINVAL, `port range 0x${start.toString(16)}+0x${size.toString(16)} is beyond port 0xffff`);
    const slot = bus === 'mmio' ? owner.mmio : owner.pio;
    const span = size === 0n ? 1n : size;
    if (!slot || start < BigInt(slot.start) || start + span > BigInt(slot.start) + BigInt(slot.size)) {
      const where = slot ? `0x${slot.start.toString(16)}+0x${slot.size.toString(16)}` : 'none';
      return fail(Errno.EPERM, `${bus} range 0x${start.toString(16)}+0x${size.toString(16)} is outside ${owner.name}'s slot (${bus} ${where})`);
    }
    return { ok: true, value: { start: Number(start), size: Number(size) } };
  }

  /**
   * Collision with anything on the bus. `datamatch`: undefined for an ioregion, null for an
   * ioeventfd matching every value, a bigint for one matching that value. As in KVM, two
   * ioeventfds may share an address when they match different values.
   */
  private clash(bus: Bus, start: number, size: number, datamatch: bigint | null | undefined): string | undefined {
    const span = size === 0 ? ZERO_LENGTH_SPAN : size;
    const dev = this.reserved.find((d) => d.bus === bus && start < d.start + d.size && d.start < start + span)?.name;
    if (dev) return `${bus} range 0x${start.toString(16)}+0x${span.toString(16)} overlaps in-process device ${dev}`;
    return this.clashWithEntries(bus, start, size, datamatch);
  }

  private clashWithEntries(bus: Bus, start: number, size: number, datamatch: bigint | null | undefined): string | undefined {
    const span = size === 0 ? ZERO_LENGTH_SPAN : size;
    for (const e of this.entries) {
      if (e.bus !== bus) continue;
      const eSpan = e.size === 0 ? ZERO_LENGTH_SPAN : e.size;
      if (!(start < e.start + eSpan && e.start < start + span)) continue;
      if (datamatch !== undefined && e.kind === 'ioeventfd') {
        // ioeventfd vs ioeventfd: KVM's rule (same address and length, and overlapping datamatch).
        const sameLen = e.size === size || e.size === 0 || size === 0;
        const valuesMeet = datamatch === null || e.datamatch === undefined || e.datamatch === datamatch;
        if (e.start !== start || !sameLen || !valuesMeet) continue;
      }
      return `${bus} range 0x${start.toString(16)}+0x${span.toString(16)} overlaps ${e.kind} 0x${e.start.toString(16)}+0x${eSpan.toString(16)} of ${e.owner.name}`;
    }
    return undefined;
  }
}

function fail(errno: number, message: string): { ok: false; errno: number; message: string } {
  return { ok: false, errno, message };
}
