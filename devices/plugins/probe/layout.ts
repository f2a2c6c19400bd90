// Register layout of the probe plugin (see main.ts); shared with its tests and bench/mmio.
export const PROBE = {
  constant: 0x0123_4567_89ab_cdefn,
  regs: 0x000, scratch: 0x08, postedCount: 0x10, doorbellCount: 0x18, ioeventfdCount: 0x20, lastPosted: 0x28, irqOnDoorbell: 0x30,
  posted: 0x100, doorbell: 0x200, ioeventfd: 0x300,
} as const;
