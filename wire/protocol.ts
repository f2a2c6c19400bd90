// The tsvmm plugin protocol, as constants and byte layouts (docs/protocol.md is the spec; this
// file must agree with it). Every payload and the 32-byte dispatch record is encoded and decoded
// here, and nowhere else: the VMM's plugin host (vmm/plugin-host/) and the plugin SDK
// (devices/plugin-sdk/) read no raw offsets. Decoders of what a peer sent validate and return a
// string naming the problem instead of throwing. Everything is little-endian.

export const PROTOCOL_MAJOR = 1;
export const PROTOCOL_MINOR = 1;

/** Control-channel message header: 16 bytes. */
export const HEADER_SIZE = 16;
/** Largest control message either side sends or accepts, header included. */
export const MAX_MESSAGE_SIZE = 65536;
/** Most fds one control message may carry. */
export const MAX_MESSAGE_FDS = 8;

export const Command = {
  VERSION: 1,
  GET_SLOT: 2,
  GET_MEMORY_MAP: 3,
  GET_IRQFD: 4,
  REGISTER_REGION: 5,
  REGISTER_IOEVENTFD: 6,
  GET_REGION_IO_FDS: 7,
  READY: 8,
  RESET: 9,
  SHUTDOWN: 10,
  LOG: 11,
  CONSOLE_WRITE: 12,
  CONSOLE_INPUT: 13,
  GET_STATE: 14,
} as const;
export type Command = (typeof Command)[keyof typeof Command];
export const COMMAND_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Command).map(([k, v]) => [v, k]));

/** Header flags word. */
export const Flags = {
  TYPE_MASK: 0xf,
  TYPE_COMMAND: 0,
  TYPE_REPLY: 1,
  NO_REPLY: 1 << 4,
  ERROR: 1 << 5,
  FD_COUNT_SHIFT: 8,
  FD_COUNT_MASK: 0x1f << 8,
  /** Bits that must be zero. */
  RESERVED: ~(0xf | (1 << 4) | (1 << 5) | (0x1f << 8)) >>> 0,
} as const;

export const Errno = {
  EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, ENOMEM: 12, EEXIST: 17, EINVAL: 22, ENOSPC: 28, ENOSYS: 38, EPROTO: 71,
  EOPNOTSUPP: 95,
} as const;
export const ERRNO_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Errno).map(([k, v]) => [v, k]));

export interface Header {
  id: number;
  command: number;
  size: number;
  flags: number;
  error: number;
}

export function encodeHeader(view: DataView, h: Header): void {
  view.setUint16(0, h.id, true);
  view.setUint16(2, h.command, true);
  view.setUint32(4, h.size, true);
  view.setUint32(8, h.flags, true);
  view.setUint32(12, h.error, true);
}

export function decodeHeader(view: DataView): Header {
  return {
    id: view.getUint16(0, true),
    command: view.getUint16(2, true),
    size: view.getUint32(4, true),
    flags: view.getUint32(8, true),
    error: view.getUint32(12, true),
  };
}

export function fdCount(flags: number): number {
  return (flags & Flags.FD_COUNT_MASK) >>> Flags.FD_COUNT_SHIFT;
}

/** Build one message: header + payload, fd count in the flags. */
export function buildMessage(id: number, command: number, type: number, payload: Uint8Array, opts: { fds?: number; error?: number; noReply?: boolean } = {}): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  const flags = type | (opts.noReply ? Flags.NO_REPLY : 0) | (opts.error ? Flags.ERROR : 0) | ((opts.fds ?? 0) << Flags.FD_COUNT_SHIFT);
  encodeHeader(new DataView(out.buffer), { id, command, size: out.length, flags, error: opts.error ?? 0 });
  out.set(payload, HEADER_SIZE);
  return out;
}

// ---- Payloads -------------------------------------------------------------------------------

/** VERSION request and reply: u16 major, u16 minor, u32 reserved, JSON capabilities, NUL. */
export interface VersionPayload {
  major: number;
  minor: number;
  caps: Record<string, unknown>;
}

export function encodeVersion(v: VersionPayload): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(v.caps));
  const out = new Uint8Array(8 + json.length + 1);
  const d = new DataView(out.buffer);
  d.setUint16(0, v.major, true);
  d.setUint16(2, v.minor, true);
  out.set(json, 8);
  return out;
}

export function decodeVersion(p: Uint8Array): VersionPayload | string {
  if (p.length < 9) return 'VERSION payload shorter than 9 bytes';
  const d = view(p);
  if (d.getUint32(4, true) !== 0) return 'VERSION reserved field is not 0';
  if (p[p.length - 1] !== 0) return 'VERSION capabilities are not NUL-terminated';
  let caps: unknown;
  try {
    caps = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p.subarray(8, p.length - 1)));
  } catch {
    return 'VERSION capabilities are not valid UTF-8 JSON';
  }
  if (typeof caps !== 'object' || caps === null || Array.isArray(caps)) return 'VERSION capabilities are not a JSON object';
  return { major: d.getUint16(0, true), minor: d.getUint16(2, true), caps: caps as Record<string, unknown> };
}

/** GET_SLOT reply (40 bytes). */
export interface SlotInfo {
  index: number;
  irq: number;
  mmioBase: number;
  mmioSize: number;
  /** 0/0 when the slot has no port range. */
  pioBase: number;
  pioSize: number;
}
export const SLOT_INFO_SIZE = 40;

export function encodeSlot(s: SlotInfo): Uint8Array {
  const out = new Uint8Array(SLOT_INFO_SIZE);
  const d = new DataView(out.buffer);
  d.setUint32(0, s.index, true);
  d.setUint32(4, s.irq, true);
  d.setBigUint64(8, BigInt(s.mmioBase), true);
  d.setBigUint64(16, BigInt(s.mmioSize), true);
  d.setUint32(24, s.pioBase, true);
  d.setUint32(28, s.pioSize, true);
  return out;
}

export function decodeSlot(p: Uint8Array): SlotInfo | string {
  if (p.length !== SLOT_INFO_SIZE) return `GET_SLOT reply is ${p.length} bytes, expected ${SLOT_INFO_SIZE}`;
  const d = view(p);
  return {
    index: d.getUint32(0, true), irq: d.getUint32(4, true),
    mmioBase: Number(d.getBigUint64(8, true)), mmioSize: Number(d.getBigUint64(16, true)),
    pioBase: d.getUint32(24, true), pioSize: d.getUint32(28, true),
  };
}

/** GET_MEMORY_MAP: request {argsz, flags}; reply {argsz, flags, nr_ram, nr_reserved, ram[], reserved[]}. */
export const MEMORY_MAP_FIXED = 16;
export const MEMORY_MAP_REQUEST_SIZE = 8;
/** The largest argsz either side accepts in a request (vfio-user's rule, bounded). */
export const MAX_ARGSZ = 1 << 20;
export const RAM_ENTRY_SIZE = 32;
export const RESERVED_ENTRY_SIZE = 16;
export const RAM_READABLE = 1;
export const RAM_WRITABLE = 2;

export interface RamEntry {
  guestPhys: number;
  size: number;
  fdOffset: number;
  fdIndex: number;
  flags: number;
}

export interface MemoryMapReply {
  argsz: number;
  ram: RamEntry[];
  reserved: { start: number; size: number }[];
  /** The reply carried only the fixed part: the request's argsz was too small. */
  partial: boolean;
}

export function encodeMemoryMapRequest(argsz: number): Uint8Array {
  const out = new Uint8Array(MEMORY_MAP_REQUEST_SIZE);
  view(out).setUint32(0, argsz, true);
  return out;
}

export function decodeMemoryMapRequest(p: Uint8Array): { argsz: number } | string {
  if (p.length !== MEMORY_MAP_REQUEST_SIZE) return `GET_MEMORY_MAP request is ${p.length} bytes, expected ${MEMORY_MAP_REQUEST_SIZE}`;
  const d = view(p);
  const argsz = d.getUint32(0, true);
  if (d.getUint32(4, true) !== 0) return `GET_MEMORY_MAP flags 0x${d.getUint32(4, true).toString(16)} are not 0`;
  if (argsz < MEMORY_MAP_FIXED || argsz > MAX_ARGSZ) return `GET_MEMORY_MAP argsz ${argsz} is outside ${MEMORY_MAP_FIXED}..${MAX_ARGSZ}`;
  return { argsz };
}

export function encodeMemoryMapReply(ram: readonly RamEntry[], reserved: readonly { start: number; size: number }[], clientArgsz: number): { payload: Uint8Array; full: boolean } {
  const needed = MEMORY_MAP_FIXED + ram.length * RAM_ENTRY_SIZE + reserved.length * RESERVED_ENTRY_SIZE;
  const full = clientArgsz >= needed;
  const out = new Uint8Array(full ? needed : MEMORY_MAP_FIXED);
  const d = new DataView(out.buffer);
  d.setUint32(0, needed, true);
  d.setUint32(8, ram.length, true);
  d.setUint32(12, reserved.length, true);
  if (full) {
    let o = MEMORY_MAP_FIXED;
    for (const r of ram) {
      d.setBigUint64(o, BigInt(r.guestPhys), true);
      d.setBigUint64(o + 8, BigInt(r.size), true);
      d.setBigUint64(o + 16, BigInt(r.fdOffset), true);
      d.setUint32(o + 24, r.fdIndex, true);
      d.setUint32(o + 28, r.flags, true);
      o += RAM_ENTRY_SIZE;
    }
    for (const r of reserved) {
      d.setBigUint64(o, BigInt(r.start), true);
      d.setBigUint64(o + 8, BigInt(r.size), true);
      o += RESERVED_ENTRY_SIZE;
    }
  }
  return { payload: out, full };
}

export function decodeMemoryMapReply(p: Uint8Array): MemoryMapReply | string {
  if (p.length < MEMORY_MAP_FIXED) return 'GET_MEMORY_MAP reply shorter than 16 bytes';
  const d = view(p);
  const argsz = d.getUint32(0, true);
  const nRam = d.getUint32(8, true);
  const nRes = d.getUint32(12, true);
  const needed = MEMORY_MAP_FIXED + nRam * RAM_ENTRY_SIZE + nRes * RESERVED_ENTRY_SIZE;
  if (argsz !== needed) return `GET_MEMORY_MAP reply argsz ${argsz} does not match its counts (${needed})`;
  if (p.length === MEMORY_MAP_FIXED && needed > MEMORY_MAP_FIXED) return { argsz, ram: [], reserved: [], partial: true };
  if (p.length !== needed) return `GET_MEMORY_MAP reply is ${p.length} bytes, expected ${needed}`;
  const ram: RamEntry[] = [];
  let o = MEMORY_MAP_FIXED;
  for (let i = 0; i < nRam; i++, o += RAM_ENTRY_SIZE) {
    ram.push({
      guestPhys: Number(d.getBigUint64(o, true)), size: Number(d.getBigUint64(o + 8, true)),
      fdOffset: Number(d.getBigUint64(o + 16, true)), fdIndex: d.getUint32(o + 24, true), flags: d.getUint32(o + 28, true),
    });
  }
  const reserved: { start: number; size: number }[] = [];
  for (let i = 0; i < nRes; i++, o += RESERVED_ENTRY_SIZE) {
    reserved.push({ start: Number(d.getBigUint64(o, true)), size: Number(d.getBigUint64(o + 8, true)) });
  }
  return { argsz, ram, reserved, partial: false };
}

/** GET_IRQFD reply: u32 gsi, u32 flags; one fd. */
export const IRQFD_REPLY_SIZE = 8;

export function encodeIrqfdReply(gsi: number): Uint8Array {
  const out = new Uint8Array(IRQFD_REPLY_SIZE);
  view(out).setUint32(0, gsi, true);
  return out;
}

export function decodeIrqfdReply(p: Uint8Array): { gsi: number } | string {
  if (p.length !== IRQFD_REPLY_SIZE) return `GET_IRQFD reply is ${p.length} bytes, expected ${IRQFD_REPLY_SIZE}`;
  return { gsi: view(p).getUint32(0, true) };
}

/** GET_STATE reply (protocol 1.1): u64 size of the slot's state memfd; one fd. */
export const STATE_REPLY_SIZE = 8;

export function encodeStateReply(size: number): Uint8Array {
  const out = new Uint8Array(STATE_REPLY_SIZE);
  view(out).setBigUint64(0, BigInt(size), true);
  return out;
}

export function decodeStateReply(p: Uint8Array): { size: number } | string {
  if (p.length !== STATE_REPLY_SIZE) return `GET_STATE reply is ${p.length} bytes, expected ${STATE_REPLY_SIZE}`;
  const size = view(p).getBigUint64(0, true);
  if (size === 0n || size > BigInt(Number.MAX_SAFE_INTEGER)) return `GET_STATE size ${size} is not a usable size`;
  return { size: Number(size) };
}

/** REGISTER_REGION payload: struct kvm_ioregion (64 bytes), fds are indexes into the message's fds. */
export const IOREGION_SIZE = 64;
export const IoregionFlag = { PIO: 1, POSTED_WRITES: 2, DEASSIGN: 4, VALID_MASK: 7 } as const;

export interface Ioregion {
  guestPaddr: bigint;
  memorySize: bigint;
  userData: bigint;
  readFd: number;
  writeFd: number;
  flags: number;
}

/** Where struct kvm_ioregion's pad bytes start (they must be zero). */
const IOREGION_PAD = 36;

export function encodeIoregion(r: Ioregion): Uint8Array {
  const out = new Uint8Array(IOREGION_SIZE);
  const d = new DataView(out.buffer);
  d.setBigUint64(0, r.guestPaddr, true);
  d.setBigUint64(8, r.memorySize, true);
  d.setBigUint64(16, r.userData, true);
  d.setInt32(24, r.readFd, true);
  d.setInt32(28, r.writeFd, true);
  d.setUint32(32, r.flags, true);
  return out;
}

/** `padded`: the pad bytes are zero, as they must be (otherwise the registration is refused with EINVAL). */
export function decodeIoregion(p: Uint8Array): (Ioregion & { padded: boolean }) | string {
  if (p.length !== IOREGION_SIZE) return `REGISTER_REGION payload is ${p.length} bytes, expected ${IOREGION_SIZE}`;
  const d = view(p);
  return {
    guestPaddr: d.getBigUint64(0, true), memorySize: d.getBigUint64(8, true), userData: d.getBigUint64(16, true),
    readFd: d.getInt32(24, true), writeFd: d.getInt32(28, true), flags: d.getUint32(32, true),
    padded: p.subarray(IOREGION_PAD).every((b) => b === 0),
  };
}

/** REGISTER_IOEVENTFD payload: struct kvm_ioeventfd (64 bytes), fd is an index into the message's fds. */
export const IOEVENTFD_SIZE = 64;
export const IoeventfdFlag = { DATAMATCH: 1, PIO: 2, DEASSIGN: 4, VALID_MASK: 7 } as const;

export interface IoeventfdReg {
  datamatch: bigint;
  addr: bigint;
  len: number;
  fd: number;
  flags: number;
}

/** Where struct kvm_ioeventfd's pad bytes start (they must be zero). */
const IOEVENTFD_PAD = 28;

export function encodeIoeventfd(r: IoeventfdReg): Uint8Array {
  const out = new Uint8Array(IOEVENTFD_SIZE);
  const d = new DataView(out.buffer);
  d.setBigUint64(0, r.datamatch, true);
  d.setBigUint64(8, r.addr, true);
  d.setUint32(16, r.len, true);
  d.setInt32(20, r.fd, true);
  d.setUint32(24, r.flags, true);
  return out;
}

/** `padded`: the pad bytes are zero, as they must be (otherwise the registration is refused with EINVAL). */
export function decodeIoeventfd(p: Uint8Array): (IoeventfdReg & { padded: boolean }) | string {
  if (p.length !== IOEVENTFD_SIZE) return `REGISTER_IOEVENTFD payload is ${p.length} bytes, expected ${IOEVENTFD_SIZE}`;
  const d = view(p);
  return {
    datamatch: d.getBigUint64(0, true), addr: d.getBigUint64(8, true), len: d.getUint32(16, true),
    fd: d.getInt32(20, true), flags: d.getUint32(24, true),
    padded: p.subarray(IOEVENTFD_PAD).every((b) => b === 0),
  };
}

/**
 * GET_REGION_IO_FDS (VMM → plugin). Request {argsz u32, flags u32 = 0, index u32 = 0, count u32 = 0};
 * reply {argsz, flags, index, count, entries[count] of 40 bytes}: vfio-user's layout.
 */
export const IO_FDS_FIXED = 16;
export const IO_FDS_ENTRY_SIZE = 40;
export const IoFdType = { IOEVENTFD: 0, IOREGIONFD: 1 } as const;

export interface IoFdEntry {
  /** Relative to the slot's MMIO base (or PIO base with the PIO flag). */
  offset: bigint;
  size: bigint;
  fdIndex: number;
  type: number;
  flags: number;
  /** datamatch for IOEVENTFD, user_data for IOREGIONFD. */
  data: bigint;
}

export function encodeIoFdsRequest(argsz: number): Uint8Array {
  const out = new Uint8Array(IO_FDS_FIXED);
  view(out).setUint32(0, argsz, true);
  return out;
}

export function decodeIoFdsRequest(p: Uint8Array): { argsz: number } | string {
  if (p.length !== IO_FDS_FIXED) return `GET_REGION_IO_FDS request is ${p.length} bytes, expected ${IO_FDS_FIXED}`;
  const d = view(p);
  const argsz = d.getUint32(0, true);
  if (d.getUint32(4, true) !== 0 || d.getUint32(8, true) !== 0 || d.getUint32(12, true) !== 0) return 'GET_REGION_IO_FDS flags, index and count must be 0';
  if (argsz < IO_FDS_FIXED || argsz > MAX_ARGSZ) return `GET_REGION_IO_FDS argsz ${argsz} is outside ${IO_FDS_FIXED}..${MAX_ARGSZ}`;
  return { argsz };
}

export function encodeIoFdsReply(entries: readonly IoFdEntry[], clientArgsz: number): { payload: Uint8Array; full: boolean } {
  const needed = IO_FDS_FIXED + entries.length * IO_FDS_ENTRY_SIZE;
  const full = clientArgsz >= needed;
  const out = new Uint8Array(full ? needed : IO_FDS_FIXED);
  const d = new DataView(out.buffer);
  d.setUint32(0, needed, true);
  d.setUint32(12, entries.length, true);
  if (full) {
    entries.forEach((e, i) => {
      const o = IO_FDS_FIXED + i * IO_FDS_ENTRY_SIZE;
      d.setBigUint64(o, e.offset, true);
      d.setBigUint64(o + 8, e.size, true);
      d.setUint32(o + 16, e.fdIndex, true);
      d.setUint32(o + 20, e.type, true);
      d.setUint32(o + 24, e.flags, true);
      d.setBigUint64(o + 32, e.data, true);
    });
  }
  return { payload: out, full };
}

export function decodeIoFdsReply(p: Uint8Array): { argsz: number; count: number; entries: IoFdEntry[] } | string {
  if (p.length < IO_FDS_FIXED) return 'GET_REGION_IO_FDS reply shorter than 16 bytes';
  const d = view(p);
  const argsz = d.getUint32(0, true);
  const count = d.getUint32(12, true);
  if (p.length === IO_FDS_FIXED) return { argsz, count, entries: [] };
  if (count === 0 || (p.length - IO_FDS_FIXED) % count !== 0) return 'GET_REGION_IO_FDS reply size does not divide into its entries';
  // Derive the stride from the reply, as vfio-user tells clients to.
  const stride = (p.length - IO_FDS_FIXED) / count;
  if (stride < IO_FDS_ENTRY_SIZE) return `GET_REGION_IO_FDS entries are ${stride} bytes, at least 40 expected`;
  const entries: IoFdEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = IO_FDS_FIXED + i * stride;
    entries.push({
      offset: d.getBigUint64(o, true), size: d.getBigUint64(o + 8, true), fdIndex: d.getUint32(o + 16, true),
      type: d.getUint32(o + 20, true), flags: d.getUint32(o + 24, true), data: d.getBigUint64(o + 32, true),
    });
  }
  return { argsz, count, entries };
}

/** CONSOLE_WRITE / CONSOLE_INPUT: u32 console (0 = hvc0), u32 reserved, bytes. */
export const CONSOLE_FIXED = 8;
export const CONSOLE_HVC0 = 0;
/** Console bytes per message: longer output is sent as several messages. */
export const CONSOLE_CHUNK = 4096;

/** One console message per CONSOLE_CHUNK bytes of `bytes`. */
export function encodeConsole(console: number, bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < bytes.length; off += CONSOLE_CHUNK) {
    const chunk = bytes.subarray(off, off + CONSOLE_CHUNK);
    const p = new Uint8Array(CONSOLE_FIXED + chunk.length);
    view(p).setUint32(0, console, true);
    p.set(chunk, CONSOLE_FIXED);
    out.push(p);
  }
  return out;
}

export function decodeConsole(p: Uint8Array): { console: number; bytes: Uint8Array } | string {
  if (p.length < CONSOLE_FIXED) return `shorter than ${CONSOLE_FIXED} bytes`;
  return { console: view(p).getUint32(0, true), bytes: p.subarray(CONSOLE_FIXED) };
}

/** LOG: u32 level (0 error, 1 warning, 2 info, 3 debug), u32 reserved, UTF-8 text. */
export const LOG_FIXED = 8;
/** Longest log text the VMM shows. */
export const MAX_LOG_TEXT = 4096;

export function encodeLog(level: number, text: string): Uint8Array {
  const t = new TextEncoder().encode(text);
  const p = new Uint8Array(LOG_FIXED + t.length);
  view(p).setUint32(0, level, true);
  p.set(t, LOG_FIXED);
  return p;
}

/** The text is made printable (control characters other than tab and newline become '?') and bounded. */
export function decodeLog(p: Uint8Array): { level: number; text: string } | string {
  if (p.length < LOG_FIXED) return `shorter than ${LOG_FIXED} bytes`;
  const text = new TextDecoder().decode(p.subarray(LOG_FIXED)).replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '?').slice(0, MAX_LOG_TEXT);
  return { level: view(p).getUint32(0, true), text };
}

// ---- Dispatch records (ioregionfd v3 wire format, 32 bytes each over SOCK_SEQPACKET) ----------
// Command (VMM → plugin): u8 cmd (0 read, 1 write), u8 info (size exponent | RESP bit), u16 pad,
// u32 pad, u64 user_data, u64 offset, u64 data. Response (plugin → VMM): u64 data, 24 bytes pad.
// The VMM side encodes commands in C++ on the vCPU thread (native/src/ioregion/); this is the
// same layout for the plugin SDK, decoded into a reused object: nothing is allocated per access.
export const DISPATCH_RECORD_SIZE = 32;
export const DISPATCH_CMD_READ = 0;
export const DISPATCH_CMD_WRITE = 1;
export const DISPATCH_RESP_BIT = 0x10;

export interface DispatchCommand {
  write: boolean;
  /** Access size in bytes: 1, 2, 4 or 8. */
  size: number;
  /** The VMM waits for a response (reads, and writes to regions without POSTED_WRITES). */
  wantResponse: boolean;
  userData: bigint;
  /** Offset inside the region (0 for a doorbell). */
  offset: number;
  /** The written value (writes); 0 for reads. */
  value: bigint;
}

/** Decode one command record into `out`. False (and `out` untouched) when it is not 32 bytes or its cmd is unknown. */
export function decodeDispatchCommand(record: DataView, length: number, out: DispatchCommand): boolean {
  if (length !== DISPATCH_RECORD_SIZE) return false;
  const cmd = record.getUint8(0);
  if (cmd !== DISPATCH_CMD_READ && cmd !== DISPATCH_CMD_WRITE) return false;
  const info = record.getUint8(1);
  out.write = cmd === DISPATCH_CMD_WRITE;
  out.size = 1 << (info & 0x3);
  out.wantResponse = (info & DISPATCH_RESP_BIT) !== 0;
  out.userData = record.getBigUint64(8, true);
  out.offset = Number(record.getBigUint64(16, true));
  out.value = out.write ? BigInt.asUintN(out.size * 8, record.getBigUint64(24, true)) : 0n;
  return true;
}

/** The response record to a read (the value) or to a non-posted write (0), written into a reused 32-byte buffer. */
export function encodeDispatchResponse(value: bigint, record: DataView): void {
  record.setBigUint64(0, value, true);
}

/** Bus numbers used by the VMM's dispatch table. */
export const BUS_MMIO = 0;
export const BUS_PIO = 1;

function view(p: Uint8Array): DataView {
  return new DataView(p.buffer, p.byteOffset, p.byteLength);
}
