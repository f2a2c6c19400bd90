// Image-build progress: plain lines where there is no terminal (CI, pipes), a live line on one.
import { afterEach, expect, test, vi } from 'vitest';
import { formatDuration, progressLine, progressPrinter, type BuildProgress } from '../../firmware/images/progress.ts';

function sink(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = { isTTY, write: (s: string) => { text += s; return true; } } as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}
const ev = (state: BuildProgress['state'], stageMs = 0): BuildProgress =>
  ({ arch: 'i386', stage: 'kernel', state, message: 'building the kernel', stageMs, totalMs: stageMs });

afterEach(() => { vi.useRealTimers(); });

test('durations and lines', () => {
  expect(formatDuration(4_400)).toBe('4s');
  expect(formatDuration(131_000)).toBe('2m11s');
  expect(progressLine(ev('start'))).toBe('i386: building the kernel ...');
  expect(progressLine(ev('done', 131_000))).toBe('i386: done: building the kernel (2m11s)');
  expect(progressLine(ev('fail', 5_000))).toBe('i386: FAILED: building the kernel (5s)');
});

test('without a terminal: one plain line per event, no control characters', () => {
  const { stream, text } = sink(false);
  const print = progressPrinter(stream);
  print(ev('start'));
  print(ev('done', 61_000));
  expect(text()).toBe('tsvmm image: i386: building the kernel ...\ntsvmm image: i386: done: building the kernel (1m01s)\n');
});

test('on a terminal: the running stage redraws its elapsed time in place', () => {
  vi.useFakeTimers();
  const saved = process.env.CI;
  delete process.env.CI;
  try {
    const { stream, text } = sink(true);
    const print = progressPrinter(stream);
    print(ev('start'));
    vi.advanceTimersByTime(2_000);
    print(ev('done', 2_000));
    expect(text()).toContain('\r\x1b[Ktsvmm image: i386: building the kernel ... 2s');
    expect(text().endsWith('\r\x1b[Ktsvmm image: i386: done: building the kernel (2s)\n')).toBe(true);
  } finally {
    if (saved !== undefined) process.env.CI = saved;
  }
});
