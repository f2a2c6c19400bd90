// A scripted web-console viewer over a real WebSocket (the `ws` client), for tests and benches:
// collects console bytes and control messages and lets callers await either without polling.
import { once } from 'node:events';
import WebSocket from 'ws';
import { parseServerMessage, type ServerMessage } from '../../../web/protocol.ts';

export function wsUrl(pageUrl: string, extra: Record<string, string> = {}): string {
  const u = new URL(pageUrl);
  u.protocol = 'ws:';
  u.pathname = '/ws';
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  return u.href;
}

export class WsViewer {
  readonly ws: WebSocket;
  readonly controls: ServerMessage[] = [];
  chunks: Buffer[] = [];
  bytes = 0;
  closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, options);
    this.ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        this.chunks.push(data);
        this.bytes += data.length;
      } else {
        const p = parseServerMessage(data.toString('utf8'));
        if (!p.ok) throw new Error(p.error);
        this.controls.push(p.message);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = once(this.ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
    this.ws.on('close', () => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves once the handshake succeeded; rejects with the HTTP status if it was refused. */
  async opened(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`refused: HTTP ${res.statusCode}`)));
      this.ws.once('error', reject);
    });
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  /** Waits until `predicate` holds, re-checking after every message. */
  until(predicate: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (predicate()) resolve();
        else if (this.ws.readyState === WebSocket.CLOSED) reject(new Error(`connection closed while waiting for ${what}`));
        else this.waiters.push(check);
      };
      check();
    });
  }

  async control<T extends ServerMessage['type']>(type: T, from = 0): Promise<Extract<ServerMessage, { type: T }>> {
    let found: ServerMessage | undefined;
    await this.until(() => (found = this.controls.slice(from).find((m) => m.type === type)) !== undefined, `a ${type} message`);
    return found as Extract<ServerMessage, { type: T }>;
  }

  send(data: string | Uint8Array): void {
    this.ws.send(data);
  }

  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) {
      this.ws.close();
      await this.closed;
    }
  }
}
