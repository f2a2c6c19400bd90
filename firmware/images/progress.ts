// Progress of an image build: events from build.ts, and the default printer. On a terminal
// the current stage shows a live elapsed time on one line; elsewhere (CI, pipes, logs) each
// stage prints plain "started"/"done" lines and nothing else.

import type { ImageArch } from './recipe.ts';

export interface BuildProgress {
  /** The architecture the stage is for; absent for shared stages (packages, source). */
  arch?: ImageArch;
  stage: string;
  state: 'start' | 'done' | 'fail' | 'info';
  message: string;
  /** Time in this stage (done/fail), or 0. */
  stageMs: number;
  /** Time since the build began. */
  totalMs: number;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** One plain line for an event, e.g. "i386: done: building the kernel (2m10s)". */
export function progressLine(p: BuildProgress): string {
  const when = p.state === 'info' || p.state === 'start' ? '' : ` (${formatDuration(p.stageMs)})`;
  const verdict = p.state === 'done' ? 'done: ' : p.state === 'fail' ? 'FAILED: ' : '';
  const more = p.state === 'start' ? ' ...' : '';
  return `${p.arch ? `${p.arch}: ` : ''}${verdict}${p.message}${more}${when}`;
}

/** Prints progress events to `stream` (stderr by default, so stdout stays clean for tools). */
export function progressPrinter(stream: NodeJS.WriteStream = process.stderr): (p: BuildProgress) => void {
  const live = stream.isTTY === true && process.env.CI !== 'true';
  let ticker: NodeJS.Timeout | undefined;
  let started = 0;
  let label = '';
  const stop = (): void => {
    if (ticker) clearInterval(ticker);
    ticker = undefined;
    if (live) stream.write('\r\x1b[K');
  };
  return (p) => {
    if (p.state === 'start') {
      stop();
      label = `tsvmm image: ${progressLine(p)}`;
      started = Date.now();
      if (live) {
        const draw = (): void => { stream.write(`\r\x1b[K${label} ${formatDuration(Date.now() - started)}`); };
        draw();
        ticker = setInterval(draw, 1000);
        ticker.unref();
      } else {
        stream.write(`${label}\n`);
      }
      return;
    }
    stop();
    stream.write(`tsvmm image: ${progressLine(p)}\n`);
  };
}
