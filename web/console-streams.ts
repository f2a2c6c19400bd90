// Each console's output as the web console keeps and sends it: a bounded scrollback per console
// (replayed to every viewer that connects or switches console), and fan-out to the viewers
// watching it, batched so that a guest trickling bytes one by one does not cost every viewer a
// frame per byte. One copy of each batch is shared by all its viewers.
import { CONSOLES, type ConsoleName } from './protocol.ts';
import { Scrollback } from './scrollback.ts';
import { consoleBytesToText } from './text-export.ts';
import type { Viewer } from './viewer.ts';

/** Output is sent at once when this much has accumulated. */
const FLUSH_BYTES = 64 << 10;
/**
 * Otherwise at most one frame per console per this interval: a console that has been quiet is
 * flushed on the next event-loop turn (no delay for a keystroke's echo), while a guest trickling
 * bytes one by one is coalesced.
 */
const FLUSH_INTERVAL_MS = 4;
/** Scrollback replay is sent in frames of this size so no single frame is huge. */
const REPLAY_FRAME_BYTES = 256 << 10;

class ConsoleStream {
  readonly scrollback: Scrollback;
  /** Output up to this absolute position has been handed to viewers. */
  flushed = 0;
  flushScheduled = false;
  lastFlushAt = -Infinity;
  constructor(readonly name: ConsoleName, capacity: number) {
    this.scrollback = new Scrollback(capacity);
  }
}

export class ConsoleStreams {
  private readonly streams: Map<ConsoleName, ConsoleStream>;

  constructor(scrollbackBytes: number, private readonly viewers: () => Iterable<Viewer>) {
    this.streams = new Map(CONSOLES.map((c) => [c, new ConsoleStream(c, scrollbackBytes)]));
  }

  /** Guest output of console `name`: kept for replay, and sent on to its viewers. */
  output(name: ConsoleName, bytes: Uint8Array): void {
    const s = this.streams.get(name);
    if (!s || bytes.length === 0) return;
    // Output that would overrun the ring before the next flush is flushed first and sent as is.
    if (s.scrollback.total - s.flushed + bytes.length > s.scrollback.capacity / 2) {
      this.flush(s);
      const start = s.scrollback.total;
      s.scrollback.write(bytes);
      const chunk = Buffer.from(bytes);
      s.flushed = s.scrollback.total;
      for (const v of this.viewers()) if (v.console === name) v.output(chunk, start, s.flushed);
      return;
    }
    s.scrollback.write(bytes);
    if (s.scrollback.total - s.flushed >= FLUSH_BYTES) this.flush(s);
    else if (!s.flushScheduled) {
      s.flushScheduled = true;
      const wait = s.lastFlushAt + FLUSH_INTERVAL_MS - performance.now();
      if (wait <= 0) setImmediate(() => this.flush(s));
      else setTimeout(() => this.flush(s), wait);
    }
  }

  /** Switch viewer `v` to console `name`: tell it, then replay that console's scrollback. */
  show(v: Viewer, name: ConsoleName): void {
    const s = this.streams.get(name)!;
    v.console = name;
    const from = s.scrollback.start;
    const to = s.scrollback.total;
    v.control({ type: 'console', console: name, scrollback: to - from });
    for (let at = from; at < to; at += REPLAY_FRAME_BYTES) {
      const end = Math.min(to, at + REPLAY_FRAME_BYTES);
      v.sentUpTo = at;
      if (!v.output(s.scrollback.slice(at, end), at, end)) return;
    }
    v.sentUpTo = to;
  }

  /** Everything kept of console `name`, as text (the scrollback download). */
  text(name: ConsoleName): string {
    return consoleBytesToText(this.streams.get(name)!.scrollback.slice());
  }

  private flush(s: ConsoleStream): void {
    s.flushScheduled = false;
    s.lastFlushAt = performance.now();
    const end = s.scrollback.total;
    const start = Math.max(s.flushed, s.scrollback.start);
    if (start >= end) return;
    const chunk = s.scrollback.slice(start, end); // one copy shared by every viewer
    s.flushed = end;
    for (const v of this.viewers()) if (v.console === s.name) v.output(chunk, start, end);
  }
}
