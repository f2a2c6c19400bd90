// The web console's plain HTTP side: the page and its assets, the token check a page uses to
// tell "server gone" from "token no longer valid", and the scrollback download. Every response
// carries the security headers; nothing is served without a valid token except the assets,
// which are content-addressed and hold no console data.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { OriginPolicy, Tokens } from './access.ts';
import type { PageBundle } from './bundle.ts';
import type { ConsoleStreams } from './console-streams.ts';
import { CONSOLES, isConsoleName } from './protocol.ts';

const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

const TOKEN_HELP = 'tsvmm web console: missing or invalid access token. Open the URL that `tsvmm run --web` printed (it carries ?token=...).\n';

export interface PageContext {
  tokens: Tokens;
  /** Known once the server's port is. */
  policy(): OriginPolicy;
  bundle: Promise<PageBundle>;
  streams: ConsoleStreams;
  log(line: string): void;
}

export async function servePage(ctx: PageContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!ctx.policy().hostAllowed(req.headers.host)) return reply(res, 403, `tsvmm web console: Host ${JSON.stringify(req.headers.host ?? '')} is not this server's address.\n`);
  if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
  const url = new URL(req.url ?? '/', 'http://localhost');
  const access = ctx.tokens.check(url.searchParams.get('token'));
  switch (url.pathname) {
    case '/': {
      if (!access) return reply(res, 401, TOKEN_HELP);
      let page;
      try {
        page = await ctx.bundle;
      } catch (err) {
        ctx.log(`web: cannot build the page: ${String(err)}`);
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
      return reply(res, 200, ctx.streams.text(name), { 'Content-Disposition': `attachment; filename="tsvmm-${name}-scrollback.txt"` });
    }
    case '/favicon.ico':
      return reply(res, 204, '');
  }
  const asset = url.pathname.startsWith('/assets/') ? (await ctx.bundle.catch(() => undefined))?.assets.get(url.pathname) : undefined;
  if (asset) return reply(res, 200, asset.body, { 'Content-Type': asset.contentType, 'Cache-Control': 'public, max-age=31536000, immutable' });
  return reply(res, 404, 'not found\n');
}

export function reply(res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...SECURITY_HEADERS, ...headers, 'Content-Length': String(buf.length) });
  res.end(res.req.method === 'HEAD' ? undefined : buf);
}

/** An HTTP refusal on a socket that asked to upgrade to a WebSocket. */
export function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
