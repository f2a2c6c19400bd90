// The browser console: a small node:http server for the page, and a WebSocket endpoint (`ws`)
// that fans each console's output out to every viewer and feeds full-access viewers' keystrokes
// to the guest. Everything here runs on the VMM's main thread, so nothing may block or grow
// without bound: output is batched once per event-loop turn and shared by all viewers, each
// viewer's socket queue is capped (see viewer.ts), input is rate-limited, frames are size-capped.
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { ConsoleHub, VmStatus } from '../vmm/console-hub.ts';
import { isWildcard, OriginPolicy, Tokens, type Access } from './access.ts';
import { pageBundle } from './bundle.ts';
import {
  CloseCode,
  CONSOLES,
  isConsoleName,
  parseClientMessage,
  PROTOCOL_VERSION,
  WS_PATH,
  type ClientMessage,
  type ConsoleName,
  type StatusMessage,
} from './protocol.ts';
import { DEFAULT_SCROLLBACK_BYTES, Scrollback } from './scrollback.ts';
import { consoleBytesToText } from './text-export.ts';
import { Viewer } from './viewer.ts';

/** What the web console needs from the VMM: ConsoleHub (vmm/console-hub.ts) provides it. */
export type WebConsoleHub = Pick<ConsoleHub, 'onOutput' | 'input' | 'power' | 'status' | 'onStatus'> & {
  /** Optional: the terminal size of the last full-access viewer that resized, for the guest's console. */
  resize?(console: ConsoleName, cols: number, rows: number): void;
};

export interface WebConsoleOptions {
  hub: WebConsoleHub;
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

/** Output is sent at once when this much has accumulated. */
const FLUSH_BYTES = 64 << 10;
/**
 * Otherwise at most one frame per console per this interval: a console that has been quiet is
 * flushed on the next event-loop turn (no delay for a keystroke's echo), while a guest trickling
 * bytes one by one is coalesced instead of costing every viewer a frame per byte.
 */
const FLUSH_INTERVAL_MS = 4;
/** Scrollback replay is sent in frames of this size so no single frame is huge. */
const REPLAY_FRAME_BYTES = 256 << 10;

const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

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

function statusMessage(s: VmStatus): StatusMessage {
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

function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

export async function startWebConsole(options: WebConsoleOptions): Promise<WebConsole> {
  const hub = options.hub;
  const host = options.host ?? DEFAULTS.host;
  const log = options.log ?? (() => {});
  const maxViewers = options.maxViewers ?? DEFAULTS.maxViewers;
  const keepaliveMs = options.keepaliveMs ?? DEFAULTS.keepaliveMs;
  const maxInputFrame = options.maxInputFrameBytes ?? DEFAULTS.maxInputFrameBytes;
  const limits = {
    maxQueueBytes: options.maxViewerQueueBytes ?? DEFAULTS.maxViewerQueueBytes,
    inputBytesPerSecond: options.inputBytesPerSecond ?? DEFAULTS.inputBytesPerSecond,
    inputBurstBytes: options.inputBurstBytes ?? DEFAULTS.inputBurstBytes,
    closeGraceMs: options.closeGraceMs ?? DEFAULTS.closeGraceMs,
  };
  const tokens = new Tokens(options.token, options.readOnlyToken);
  const streams = new Map<ConsoleName, ConsoleStream>(CONSOLES.map((c) => [c, new ConsoleStream(c, options.scrollbackBytes ?? DEFAULT_SCROLLBACK_BYTES)]));
  const viewers = new Set<Viewer>();
  let nextViewerId = 1;
  let policy: OriginPolicy | undefined; // known once the port is
  const bundle = pageBundle(); // start bundling while the socket is being bound
  bundle.catch(() => {}); // reported when the page is requested

  // ---- output fan-out ----

  function flush(s: ConsoleStream): void {
    s.flushScheduled = false;
    s.lastFlushAt = performance.now();
    const end = s.scrollback.total;
    const start = Math.max(s.flushed, s.scrollback.start);
    if (start >= end) return;
    const chunk = s.scrollback.slice(start, end); // one copy shared by every viewer
    s.flushed = end;
    for (const v of viewers) if (v.console === s.name) v.output(chunk, start, end);
  }

  const stopOutput = hub.onOutput((name, bytes) => {
    const s = streams.get(name);
    if (!s || bytes.length === 0) return;
    // Output that would overrun the ring before the next flush is flushed first and sent as is.
    if (s.scrollback.total - s.flushed + bytes.length > s.scrollback.capacity / 2) {
      flush(s);
      const start = s.scrollback.total;
      s.scrollback.write(bytes);
      const chunk = Buffer.from(bytes);
      s.flushed = s.scrollback.total;
      for (const v of viewers) if (v.console === name) v.output(chunk, start, s.flushed);
      return;
    }
    s.scrollback.write(bytes);
    if (s.scrollback.total - s.flushed >= FLUSH_BYTES) flush(s);
    else if (!s.flushScheduled) {
      s.flushScheduled = true;
      const wait = s.lastFlushAt + FLUSH_INTERVAL_MS - performance.now();
      if (wait <= 0) setImmediate(flush, s);
      else setTimeout(flush, wait, s);
    }
  });

  const stopStatus = hub.onStatus((status) => {
    const m = statusMessage(status);
    for (const v of viewers) v.control(m);
  });

  // ---- viewers ----

  function show(v: Viewer, name: ConsoleName): void {
    const s = streams.get(name)!;
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

  function onDrop(v: Viewer, code: number, reason: string): void {
    viewers.delete(v);
    log(`web: viewer #${v.id} (${v.remote}) dropped: ${reason} [${code}]`);
  }

  function handleControl(v: Viewer, m: ClientMessage): void {
    switch (m.type) {
      case 'ping':
        v.control({ type: 'pong', t: m.t });
        return;
      case 'pong':
        return;
      case 'console':
        show(v, m.console);
        return;
      case 'resize':
        // A read-only viewer's window size is its own business, not the guest's.
        if (v.access === 'full') hub.resize?.(v.console, m.cols, m.rows);
        return;
      case 'power':
        if (v.access !== 'full') {
          v.control({ type: 'error', code: 'read-only', message: 'this viewer is read-only: power controls need the full-access URL' });
          return;
        }
        log(`web: viewer #${v.id} (${v.remote}) requested ${m.action}`);
        hub.power(m.action);
        return;
    }
  }

  function onMessage(v: Viewer, data: RawData, isBinary: boolean): void {
    v.lastSeen = performance.now();
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (!isBinary) {
      const parsed = parseClientMessage(bytes.toString('utf8'));
      if (parsed.ok) handleControl(v, parsed.message);
      else v.control({ type: 'error', code: 'bad-message', message: parsed.error });
      return;
    }
    if (v.access !== 'full') {
      v.control({ type: 'error', code: 'read-only', message: 'this viewer is read-only: input is ignored' });
      return;
    }
    if (!v.input.take(bytes.length)) {
      v.control({ type: 'error', code: 'input-rate', message: `input over ${limits.inputBytesPerSecond} bytes/s was dropped` });
      return;
    }
    hub.input(v.console, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  }

  function attach(ws: WebSocket, access: Access, name: ConsoleName, remote: string): void {
    const v = new Viewer(nextViewerId++, ws, access, name, remote, limits, onDrop, log);
    ws.on('error', () => {}); // a reset connection just closes
    ws.on('close', () => {
      if (viewers.delete(v)) log(`web: viewer #${v.id} (${remote}) disconnected`);
    });
    if (viewers.size >= maxViewers) {
      log(`web: refused viewer from ${remote}: ${maxViewers} viewers already connected`);
      ws.close(CloseCode.tooManyViewers, `too many viewers (limit ${maxViewers})`);
      return;
    }
    viewers.add(v);
    log(`web: viewer #${v.id} (${access}) connected from ${remote}`);
    ws.on('message', (data, isBinary) => onMessage(v, data, isBinary));
    v.control({ type: 'hello', version: PROTOCOL_VERSION, access, consoles: [...CONSOLES], keepaliveMs, maxInputFrame });
    v.control(statusMessage(hub.status()));
    show(v, name);
  }

  const wss = new WebSocketServer({ noServer: true, maxPayload: maxInputFrame, perMessageDeflate: false, clientTracking: false });

  const keepalive = setInterval(() => {
    const now = performance.now();
    for (const v of viewers) {
      if (now - v.lastSeen > 2 * keepaliveMs) v.drop(CloseCode.keepaliveTimeout, `no message from viewer for ${Math.round((now - v.lastSeen) / 1000)} s`);
      else v.control({ type: 'ping', t: Date.now() });
    }
  }, keepaliveMs);
  keepalive.unref();

  // ---- HTTP ----

  function reply(res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...SECURITY_HEADERS, ...headers, 'Content-Length': String(buf.length) });
    res.end(res.req.method === 'HEAD' ? undefined : buf);
  }

  const TOKEN_HELP = 'tsvmm web console: missing or invalid access token. Open the URL that `tsvmm run --web` printed (it carries ?token=...).\n';

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!policy!.hostAllowed(req.headers.host)) return reply(res, 403, `tsvmm web console: Host ${JSON.stringify(req.headers.host ?? '')} is not this server's address.\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
    const url = new URL(req.url ?? '/', 'http://localhost');
    const access = tokens.check(url.searchParams.get('token'));
    switch (url.pathname) {
      case '/': {
        if (!access) return reply(res, 401, TOKEN_HELP);
        let page;
        try {
          page = await bundle;
        } catch (err) {
          log(`web: cannot build the page: ${String(err)}`);
          return reply(res, 500, `tsvmm web console: cannot build the page: ${String(err)}\n`);
        }
        return reply(res, 200, page.html, { 'Content-Type': 'text/html; charset=utf-8' });
      }
      case '/check':
        // Lets a page that cannot reconnect tell "server gone" from "token no longer valid".
        return access ? reply(res, 204, '') : reply(res, 401, TOKEN_HELP);
      case '/scrollback': {
        if (!access) return reply(res, 401, TOKEN_HELP);
        const name = url.searchParams.get('console') ?? 'ttyS0';
        if (!isConsoleName(name)) return reply(res, 400, `unknown console ${JSON.stringify(name)}; use one of ${CONSOLES.join(', ')}\n`);
        const text = consoleBytesToText(streams.get(name)!.scrollback.slice());
        return reply(res, 200, text, { 'Content-Disposition': `attachment; filename="tsvmm-${name}-scrollback.txt"` });
      }
      case '/favicon.ico':
        return reply(res, 204, '');
    }
    const asset = url.pathname.startsWith('/assets/') ? (await bundle.catch(() => undefined))?.assets.get(url.pathname) : undefined;
    if (asset) return reply(res, 200, asset.body, { 'Content-Type': asset.contentType, 'Cache-Control': 'public, max-age=31536000, immutable' });
    return reply(res, 404, 'not found\n');
  }

  const server = createServer((req, res) => {
    onRequest(req, res).catch((err: unknown) => {
      log(`web: request ${req.url} failed: ${String(err)}`);
      if (!res.headersSent) reply(res, 500, 'internal error\n');
      else res.destroy();
    });
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    const url = new URL(req.url ?? '/', 'http://localhost');
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    if (url.pathname !== WS_PATH) return refuseUpgrade(socket, 404, `no WebSocket endpoint at ${url.pathname}; use ${WS_PATH}`);
    if (!policy!.hostAllowed(req.headers.host)) {
      log(`web: refused WebSocket from ${remote}: Host ${req.headers.host}`);
      return refuseUpgrade(socket, 403, 'Host is not this server');
    }
    if (!policy!.originAllowed(req.headers.origin)) {
      log(`web: refused WebSocket from ${remote}: foreign Origin ${req.headers.origin}`);
      return refuseUpgrade(socket, 403, 'foreign Origin');
    }
    const access = tokens.check(url.searchParams.get('token'));
    if (!access) {
      log(`web: refused WebSocket from ${remote}: missing or invalid token`);
      return refuseUpgrade(socket, 401, 'missing or invalid token');
    }
    const requested = url.searchParams.get('console') ?? 'ttyS0';
    if (!isConsoleName(requested)) return refuseUpgrade(socket, 400, `unknown console; use one of ${CONSOLES.join(', ')}`);
    wss.handleUpgrade(req, socket, head, (ws) => attach(ws, access, requested, remote));
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const hint =
        err.code === 'EADDRINUSE'
          ? 'the port is in use; choose another with --web HOST:PORT, or port 0 for a free one'
          : err.code === 'EADDRNOTAVAIL'
            ? 'that address is not on this machine; use 127.0.0.1 (default) or one of its addresses'
            : err.code === 'EACCES'
              ? 'ports below 1024 need privileges; use a higher port or 0'
              : 'check the --web HOST:PORT value';
      reject(new Error(`cannot serve the web console on ${host}:${options.port ?? 0}: ${err.code ?? err.message}: ${hint}`));
    };
    server.once('error', onError);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  policy = new OriginPolicy(host, port, options.allowedOrigins);
  if (!/^127\.|^::1$|^localhost$/.test(host)) {
    log(`web: warning: serving on ${host}, not loopback: anyone who can reach port ${port} and learns the URL gets the console, over unencrypted HTTP`);
  }

  const base = `http://${urlHost(host)}:${port}/`;
  let closing: Promise<void> | undefined;
  return {
    url: `${base}?token=${tokens.fullToken}`,
    readOnlyUrl: `${base}?token=${tokens.readOnlyToken}`,
    host,
    port,
    viewerCount: () => viewers.size,
    close() {
      closing ??= (async () => {
        clearInterval(keepalive);
        stopOutput();
        stopStatus();
        const gone = [...viewers].map((v) => new Promise<void>((r) => (v.ws.readyState === v.ws.CLOSED ? r() : v.ws.once('close', () => r()))));
        for (const v of [...viewers]) v.drop(CloseCode.shuttingDown, 'tsvmm is shutting down');
        await Promise.all(gone);
        const stopped = new Promise<void>((r) => server.close(() => r()));
        server.closeAllConnections(); // keep-alive page connections would otherwise hold close() open
        await stopped;
      })();
      return closing;
    },
  };
}
