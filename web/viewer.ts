// One connected browser (or other client) of the web console: what it may do, which console it
// watches, how far into that console's output it has been sent, and the policy that keeps a slow
// viewer from ever slowing the VM — its socket queue is bounded, and a viewer that would exceed
// the bound is dropped with the reason in the close frame (it reconnects and replays the
// scrollback, so its screen is complete again).
import type { WebSocket } from 'ws';
import type { Access } from './access.ts';
import { CloseCode, encode, type ConsoleName, type ServerMessage } from './protocol.ts';
import { TokenBucket } from './rate-limit.ts';

export interface ViewerLimits {
  maxQueueBytes: number;
  inputBytesPerSecond: number;
  inputBurstBytes: number;
  /** Time a dropped viewer's socket gets to flush the close frame before it is destroyed. */
  closeGraceMs: number;
}

export class Viewer {
  console: ConsoleName;
  /** Absolute position in `console`'s output up to which this viewer has been sent bytes. */
  sentUpTo = 0;
  lastSeen = performance.now();
  closed = false;
  readonly input: TokenBucket;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly access: Access,
    console: ConsoleName,
    readonly remote: string,
    private readonly limits: ViewerLimits,
    private readonly onDrop: (viewer: Viewer, code: number, reason: string) => void,
    private readonly log: (line: string) => void,
  ) {
    this.console = console;
    this.input = new TokenBucket(limits.inputBytesPerSecond, limits.inputBurstBytes);
    ws.once('close', () => {
      this.closed = true;
    });
  }

  control(message: ServerMessage): void {
    if (!this.closed) this.ws.send(encode(message));
  }

  /**
   * Sends the part of output chunk [start, end) of this viewer's console it has not had yet.
   * Returns false if the viewer was dropped for falling behind.
   */
  output(chunk: Buffer, start: number, end: number): boolean {
    if (this.closed || this.sentUpTo >= end) return !this.closed;
    const part = this.sentUpTo > start ? chunk.subarray(this.sentUpTo - start) : chunk;
    const queued = this.ws.bufferedAmount;
    if (queued + part.length > this.limits.maxQueueBytes) {
      this.drop(CloseCode.slowViewer, `viewer too slow: ${queued} bytes queued, limit ${this.limits.maxQueueBytes}`);
      return false;
    }
    this.ws.send(part, { binary: true });
    this.sentUpTo = end;
    return true;
  }

  /** Closes with a reason; a stalled peer that cannot even take the close frame is cut off. */
  drop(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onDrop(this, code, reason);
    this.ws.close(code, reason.slice(0, 123));
    const timer = setTimeout(() => {
      this.log(`web: viewer #${this.id} (${this.remote}) did not take the close frame within ${this.limits.closeGraceMs} ms; connection cut`);
      this.ws.terminate();
    }, this.limits.closeGraceMs);
    timer.unref();
    this.ws.once('close', () => clearTimeout(timer));
  }
}
