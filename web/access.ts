// Who may use the web console: a random token for full access and one for read-only viewers,
// compared in constant time, and an Origin/Host allow-list so that another web site open in the
// same browser (or a DNS-rebinding name that resolves to 127.0.0.1) cannot drive the console.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { networkInterfaces } from 'node:os';

export type Access = 'full' | 'read-only';

/** 32 random bytes, URL-safe. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

// Hashing first gives equal-length inputs to timingSafeEqual, so neither the length nor the
// content of a wrong guess changes the time taken.
function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export class Tokens {
  private readonly full: Buffer;
  private readonly readOnly: Buffer;

  constructor(
    readonly fullToken: string = newToken(),
    readonly readOnlyToken: string = newToken(),
  ) {
    if (fullToken === readOnlyToken) throw new Error('the full-access and read-only tokens must differ');
    this.full = digest(fullToken);
    this.readOnly = digest(readOnlyToken);
  }

  /** The access a presented token grants, or undefined. Both comparisons always run. */
  check(presented: string | null | undefined): Access | undefined {
    const d = digest(presented ?? '');
    const isFull = timingSafeEqual(d, this.full);
    const isReadOnly = timingSafeEqual(d, this.readOnly);
    if (presented == null || presented === '') return undefined;
    return isFull ? 'full' : isReadOnly ? 'read-only' : undefined;
  }
}

function hostPart(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/**
 * The `host:port` values a legitimate browser may use to reach a server bound to `bindHost`.
 * A wildcard bind accepts every local interface address.
 */
export function allowedHosts(bindHost: string, port: number, extraOrigins: readonly string[] = []): Set<string> {
  const names = new Set<string>();
  if (isWildcard(bindHost)) {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(hostPart(a.address));
    names.add('localhost');
  } else {
    names.add(hostPart(bindHost));
    if (isLoopback(bindHost)) names.add('localhost');
  }
  const hosts = new Set<string>();
  for (const n of names) hosts.add(`${n}:${port}`.toLowerCase());
  for (const o of extraOrigins) hosts.add(new URL(o).host.toLowerCase());
  return hosts;
}

export class OriginPolicy {
  private readonly hosts: Set<string>;
  private readonly origins: Set<string>;

  constructor(bindHost: string, port: number, extraOrigins: readonly string[] = []) {
    this.hosts = allowedHosts(bindHost, port, extraOrigins);
    this.origins = new Set([...this.hosts].map((h) => `http://${h}`));
    for (const o of extraOrigins) this.origins.add(new URL(o).origin.toLowerCase());
  }

  /** The Host header must name this server; defeats DNS rebinding. */
  hostAllowed(host: string | undefined): boolean {
    return host !== undefined && this.hosts.has(host.toLowerCase());
  }

  /**
   * Browsers always send Origin on WebSocket upgrades; a foreign one means another site's page
   * is trying to connect. Non-browser clients (scripts, tests) send none and rely on the token.
   */
  originAllowed(origin: string | undefined): boolean {
    return origin === undefined || this.origins.has(origin.toLowerCase());
  }
}
