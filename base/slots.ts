// The slot layout: how the device window and a port range are cut into slots for device
// processes. A slot is what one device plugin owns: a 4 KiB MMIO window, an interrupt line, a
// 256-port range and a state memory that outlives its processes (docs/protocol.md §3).
//
//   slot n   MMIO  DEVICE_WINDOW.start + n * 4 KiB      (0xD0000000, 0xD0001000, ...)
//            PIO   0x6000 + n * 0x100                   (free on a tsvmm PC)
//            IRQ   DEVICE_SLOT_IRQS[n]
import { DEVICE_WINDOW, MemoryMapError } from './memory-map.ts';

export const DEVICE_SLOT_SIZE = 0x1000;
/**
 * Interrupt lines for device slots, in slot order. ISA lines the PC platform leaves free
 * (0 PIT, 1 keyboard, 2 cascade, 4 COM1, 8 RTC, 13 FPU are taken), so the same list works
 * on a PIC-only i386 guest and through the IOAPIC on x86_64.
 */
export const DEVICE_SLOT_IRQS: readonly number[] = [5, 6, 7, 9, 10, 11, 12, 14, 15];
/** How many slots there are: one per free interrupt line. */
export const MAX_SLOTS = DEVICE_SLOT_IRQS.length;

/** Ports handed to plugins that ask for a port range: 0x6000 + slot * 0x100. */
export const PIO_SLOT_BASE = 0x6000;
export const PIO_SLOT_SIZE = 0x100;
/** Every slot's ports together: what the VMM forwards to the plugin dispatch table. */
export const PIO_SLOT_WINDOW = { start: PIO_SLOT_BASE, size: MAX_SLOTS * PIO_SLOT_SIZE, name: 'device plugin ports' } as const;

/** Bytes of each slot's state memfd (GET_STATE): room for a virtio device with dozens of queues. */
export const SLOT_STATE_SIZE = 64 * 1024;

export interface SlotLayout {
  index: number;
  mmioBase: number;
  mmioSize: number;
  irq: number;
  pioBase: number;
  pioSize: number;
}

/** Where slot `index` lives. */
export function slotLayout(index: number): SlotLayout {
  const irq = DEVICE_SLOT_IRQS[index];
  if (irq === undefined) throw new MemoryMapError(`no device slot ${index}: tsvmm has ${MAX_SLOTS}`);
  return {
    index, irq,
    mmioBase: DEVICE_WINDOW.start + index * DEVICE_SLOT_SIZE, mmioSize: DEVICE_SLOT_SIZE,
    pioBase: PIO_SLOT_BASE + index * PIO_SLOT_SIZE, pioSize: PIO_SLOT_SIZE,
  };
}

/** The MMIO range and interrupt line of device slot `index`. */
export function deviceSlot(index: number): { base: number; size: number; irq: number } {
  const s = slotLayout(index);
  return { base: s.mmioBase, size: s.mmioSize, irq: s.irq };
}
