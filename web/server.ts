// The browser console: a small node:http server for the page (pages.ts), and a WebSocket
// endpoint (`ws`) that fans each console's output out to every viewer (console-streams.ts) and
// feeds full-access viewers' keystrokes to the guest. Everything here runs on the VMM's main
// thread, so nothing may block or grow without bound: output is batched and shared by all
// viewers, each viewer's socket queue is capped (viewer.ts), input is rate-limited, frames are
// size-capped. What it serves is a WebConsoleSource (console.ts): it knows nothing of the VMM.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { isWildcard, OriginPolicy, Tokens, type Access } from './access.ts';
import { pageBundle } from './bundle.ts';
import type { ConsoleStatus, WebConsoleSource } from './console.ts';
import { ConsoleStreams } from './console-streams.ts';
import { refuseUpgrade, reply, servePage } from './pages.ts';
import {
  CloseCode, CONSOLES, isConsoleName, parseClientMessage, PROTOCOL_VERSION, WS_PATH,
  type ClientMessage, type ConsoleName, type StatusMessage,
} from './protocol.ts';
import { DEFAULT_SCROLLBACK_BYTES } from './scrollback.ts';
import { Viewer, type ViewerLimits } from './viewer.ts';

export type { WebConsoleSource } from './console.ts';

export interface WebConsoleOptions {
  /** The VM's consoles (cli/run.ts gives the VM's ConsoleHub). */
  hub: WebConsoleSource;
  /** Address to bind; loopback by default. Anything else is reachable by others on the network. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** One line per notable event (viewer connected/dropped, warnings). */
  log?: (line: string) => void;
  /** Extra origins allowed to open the WebSocket, e.g. a reverse proxy's `https://console.example`. */
  allowedOrigins?: string[];
  /** Bytes of output kept per console and replayed to each (re)connecting viewer. */
  scrollbackBytes?: number;
  /** A viewer whose socket holds more than this many unsent bytes is dropped. */
  maxViewerQueueBytes?: number;
  maxViewers?: number;
  /** Largest WebSocket frame accepted from a viewer (ws maxPayload). */
  maxInputFrameBytes?: number;
  inputBytesPerSecond?: number;
  inputBurstBytes?: number;
  /** Interval of the JSON keepalive pings; a viewer silent for two intervals is dropped. */
  keepaliveMs?: number;
  /** How long a dropped viewer's socket may take to flush the close frame before it is cut off. */
  closeGraceMs?: number;
  /** Fixed tokens (tests, or a supervisor that hands them out); random by default. */
  token?: string;
  readOnlyToken?: string;
}

export interface WebConsole {
  /** Full-access URL, token included. */
  url: string;
  /** Read-only URL, read-only token included. */
  readOnlyUrl: string;
  host: string;
  port: number;
  viewerCount(): number;
  close(): Promise<void>;
}

export const DEFAULTS = {
  host: '127.0.0.1',
  maxViewerQueueBytes: 8 << 20,
  maxViewers: 32,
  maxInputFrameBytes: 64 << 10,
  inputBytesPerSecond: 64 << 10,
  inputBurstBytes: 256 << 10,
  keepaliveMs: 20_000,
  closeGraceMs: 2000,
} as const;

function statusMessage(s: ConsoleStatus): StatusMessage {
  const m: StatusMessage = { type: 'status', state: s.state, backend: s.backend };
  if (s.exitCode !== undefined) m.exitCode = s.exitCode;
  if (s.reason !== undefined) m.reason = s.reason;
  return m;
}

function urlHost(host: string): string {
  if (isWildcard(host)) {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
    return '127.0.0.1';
  }
  return host.includes(':') ? `[${host}]` : host;
}

function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  const hint =
    err.code === 'EADDRINUSE'
      ? 'the port is in use; choose another with --web HOST:PORT, or port 0 for a free one'
      : err.code === 'EADDRNOTAVAIL'
        ? 'that address is not on this machine; use 127.0.0.1 (default) or one of its addresses'
        : err.code === 'EACCES'
          ? 'ports below 1024 need privileges; use a higher port or 0'
          : 'check the --web HOST:PORT value';
  return new Error(`cannot serve the web console on ${host}:${port}: ${err.code ?? err.message}: ${hint}`);
}

/** Serve `options.hub` to browsers; resolves once the server listens. */
export async function startWebConsole(options: WebConsoleOptions): Promise<WebConsole> {
  const server = new WebConsoleServer(options);
  await server.listen();
  return server.handle();
}

class WebConsoleServer {
  private readonly hub: WebConsoleSource;
  private readonly host: string;
  private readonly log: (line: string) => void;
  private readonly maxViewers: number;
  private readonly keepaliveMs: number;
  private readonly maxInputFrame: number;
  private readonly limits: ViewerLimits;
  private readonly tokens: Tokens;
  private readonly viewers = new Set<Viewer>();
  private readonly streams: ConsoleStreams;
  private readonly wss: WebSocketServer;
  private readonly http: Server;
  private readonly keepalive: NodeJS.Timeout;
  private readonly stopListening: (() => void)[];
  private nextViewerId = 1;
  private policy: OriginPolicy | undefined; // known once the port is
  private port = 0;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: WebConsoleOptions) {
    this.hub = options.hub;
    this.host = options.host ?? DEFAULTS.host;
    this.log = options.log ?? (() => {});
    this.maxViewers = options.maxViewers ?? DEFAULTS.maxViewers;
    this.keepaliveMs = options.keepaliveMs ?? DEFAULTS.keepaliveMs;
    this.maxInputFrame = options.maxInputFrameBytes ?? DEFAULTS.maxInputFrameBytes;
    this.limits = {
      maxQueueBytes: options.maxViewerQueueBytes ?? DEFAULTS.maxViewerQueueBytes,
      inputBytesPerSecond: options.inputBytesPerSecond ?? DEFAULTS.inputBytesPerSecond,
      inputBurstBytes: options.inputBurstBytes ?? DEFAULTS.inputBurstBytes,
      closeGraceMs: options.closeGraceMs ?? DEFAULTS.closeGraceMs,
    };
    this.tokens = new Tokens(options.token, options.readOnlyToken);
    this.streams = new ConsoleStreams(options.scrollbackBytes ?? DEFAULT_SCROLLBACK_BYTES, () => this.viewers);
    const bundle = pageBundle(); // start bundling while the socket is being bound
    bundle.catch(() => {}); // reported when the page is requested
    const pages = { tokens: this.tokens, policy: () => this.policy!, bundle, streams: this.streams, log: this.log };
    this.stopListening = [
      this.hub.onOutput((name, bytes) => this.streams.output(name, bytes)),
      this.hub.onStatus((status) => {
        const m = statusMessage(status);
        for (const v of this.viewers) v.control(m);
      }),
    ];
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.maxInputFrame, perMessageDeflate: false, clientTracking: false });
    this.http = createServer((req, res) => {
      servePage(pages, req, res).catch((err: unknown) => {
        this.log(`web: request ${req.url} failed: ${String(err)}`);
        if (!res.headersSent) reply(res, 500, 'internal error\n');
        else res.destroy();
      });
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.keepalive = setInterval(() => this.ping(), this.keepaliveMs);
    this.keepalive.unref();
  }

  async listen(): Promise<void> {
    const port = this.options.port ?? 0;
    try {
      await new Promise<void>((resolve, reject) => {
        this.http.once('error', reject);
        this.http.listen(port, this.host, () => {
          this.http.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      this.stop();
      throw listenError(e as NodeJS.ErrnoException, this.host, port);
    }
    this.port = (this.http.address() as AddressInfo).port;
    this.policy = new OriginPolicy(this.host, this.port, this.options.allowedOrigins);
    if (!/^127\.|^::1$|^localhost$/.test(this.host)) {
      this.log(`web: warning: serving on ${this.host}, not loopback: anyone who can reach port ${this.port} and learns the URL gets the console, over unencrypted HTTP`);
    }
  }

  handle(): WebConsole {
    const base = `http://${urlHost(this.host)}:${this.port}/`;
    return {
      url: `${base}?token=${this.tokens.fullToken}`,
      readOnlyUrl: `${base}?token=${this.tokens.readOnlyToken}`,
      host: this.host,
      port: this.port,
      viewerCount: () => this.viewers.size,
      close: () => (this.closing ??= this.close()),
    };
  }

  private async close(): Promise<void> {
    this.stop();
    const gone = [...this.viewers].map((v) => new Promise<void>((r) => (v.ws.readyState === v.ws.CLOSED ? r() : v.ws.once('close', () => r()))));
    for (const v of [...this.viewers]) v.drop(CloseCode.shuttingDown, 'tsvmm is shutting down');
    await Promise.all(gone);
    const stopped = new Promise<void>((r) => this.http.close(() => r()));
    this.http.closeAllConnections(); // keep-alive page connections would otherwise hold close() open
    await stopped;
  }

  /** No more output, status or keepalives. */
  private stop(): void {
    clearInterval(this.keepalive);
    for (const off of this.stopListening) off();
  }

  private ping(): void {
    const now = performance.now();
    for (const v of this.viewers) {
      if (now - v.lastSeen > 2 * this.keepaliveMs) v.drop(CloseCode.keepaliveTimeout, `no message from viewer for ${Math.round((now - v.lastSeen) / 1000)} s`);
      else v.control({ type: 'ping', t: Date.now() });
    }
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const url = new URL(req.url ?? '/', 'http://localhost');
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const policy = this.policy!;
    if (url.pathname !== WS_PATH) return refuseUpgrade(socket, 404, `no WebSocket endpoint at ${url.pathname}; use ${WS_PATH}`);
    if (!policy.hostAllowed(req.headers.host)) {
      this.log(`web: refused WebSocket from ${remote}: Host ${req.headers.host}`);
      return refuseUpgrade(socket, 403, 'Host is not this server');
    }
    if (!policy.originAllowed(req.headers.origin)) {
      this.log(`web: refused WebSocket from ${remote}: foreign Origin ${req.headers.origin}`);
      return refuseUpgrade(socket, 403, 'foreign Origin');
    }
    const access = this.tokens.check(url.searchParams.get('token'));
    if (!access) {
      this.log(`web: refused WebSocket from ${remote}: missing or invalid token`);
      return refuseUpgrade(socket, 401, 'missing or invalid token');
    }
    const requested = url.searchParams.get('console') ?? 'ttyS0';
    if (!isConsoleName(requested)) return refuseUpgrade(socket, 400, `unknown console; use one of ${CONSOLES.join(', ')}`);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, access, requested, remote));
  }

  private attach(ws: WebSocket, access: Access, name: ConsoleName, remote: string): void {
    const v = new Viewer(this.nextViewerId++, ws, access, name, remote, this.limits, (viewer, code, reason) => this.dropped(viewer, code, reason), this.log);
    ws.on('error', () => {}); // a reset connection just closes
    ws.on('close', () => {
      if (this.viewers.delete(v)) this.log(`web: viewer #${v.id} (${remote}) disconnected`);
    });
    if (this.viewers.size >= this.maxViewers) {
      this.log(`web: refused viewer from ${remote}: ${this.maxViewers} viewers already connected`);
      ws.close(CloseCode.tooManyViewers, `too many viewers (limit ${this.maxViewers})`);
      return;
    }
    this.viewers.add(v);
    this.log(`web: viewer #${v.id} (${access}) connected from ${remote}`);
    ws.on('message', (data, isBinary) => this.message(v, data, isBinary));
    v.control({ type: 'hello', version: PROTOCOL_VERSION, access, consoles: [...CONSOLES], keepaliveMs: this.keepaliveMs, maxInputFrame: this.maxInputFrame });
    v.control(statusMessage(this.hub.status()));
    this.streams.show(v, name);
  }

  private dropped(v: Viewer, code: number, reason: string): void {
    this.viewers.delete(v);
    this.log(`web: viewer #${v.id} (${v.remote}) dropped: ${reason} [${code}]`);
  }

  private message(v: Viewer, data: RawData, isBinary: boolean): void {
    v.lastSeen = performance.now();
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (!isBinary) {
      const parsed = parseClientMessage(bytes.toString('utf8'));
      if (parsed.ok) this.control(v, parsed.message);
      else v.control({ type: 'error', code: 'bad-message', message: parsed.error });
      return;
    }
    if (v.access !== 'full') {
      v.control({ type: 'error', code: 'read-only', message: 'this viewer is read-only: input is ignored' });
      return;
    }
    if (!v.input.take(bytes.length)) {
      v.control({ type: 'error', code: 'input-rate', message: `input over ${this.limits.inputBytesPerSecond} bytes/s was dropped` });
      return;
    }
    this.hub.input(v.console, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  }

  private control(v: Viewer, m: ClientMessage): void {
    switch (m.type) {
      case 'ping':
        v.control({ type: 'pong', t: m.t });
        return;
      case 'pong':
        return;
      case 'console':
        this.streams.show(v, m.console);
        return;
      case 'resize':
        // A read-only viewer's window size is its own business, not the guest's.
        if (v.access === 'full') this.hub.resize?.(v.console, m.cols, m.rows);
        return;
      case 'power':
        if (v.access !== 'full') {
          v.control({ type: 'error', code: 'read-only', message: 'this viewer is read-only: power controls need the full-access URL' });
          return;
        }
        this.log(`web: viewer #${v.id} (${v.remote}) requested ${m.action}`);
        this.hub.power(m.action);
        return;
    }
  }
}
