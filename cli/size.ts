// Human sizes for --mem and friends: "256M", "1G", "512MiB", "64k"; a bare number means MiB,
// as in QEMU's -m.
import { UsageError } from './errors.ts';

const UNITS: Record<string, number> = { '': 2 ** 20, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`${what}: "${text}" is not a size; write it like 256M, 1G or 512 (MiB)`);
  const bytes = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${what}: "${text}" is not a whole number of bytes`);
  return bytes;
}

export function formatSize(bytes: number): string {
  for (const [unit, n] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  }
  return `${bytes} bytes`;
}
