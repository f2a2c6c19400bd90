// What `tsvmm run --web [HOST:]PORT` means, and the lines it prints, kept next to the server so
// the CLI (cli/main.ts) and the end-to-end test agree on them.
import type { WebConsole } from './server.ts';

export class WebAddressError extends Error {}

const EXAMPLES = 'expected [HOST:]PORT, e.g. 8080, 127.0.0.1:8080, [::1]:0, 0.0.0.0:8080 (port 0 picks a free one)';

/**
 * Parses the --web value. Empty means the defaults: loopback and a free port. A bare number is a
 * port, anything else without a port is a host (free port). IPv6 hosts with a port need brackets.
 */
export function parseWebAddress(spec: string | undefined, defaultHost = '127.0.0.1'): { host: string; port: number } {
  const s = (spec ?? '').trim();
  if (s === '') return { host: defaultHost, port: 0 };
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if (/^\d+$/.test(s)) {
    host = defaultHost;
    portText = s;
  } else if ((s.match(/:/g) ?? []).length === 1) {
    [host, portText] = s.split(':') as [string, string];
  } else {
    host = s; // a name, an IPv4 address, or a bare IPv6 address
  }
  if (host === '') throw new WebAddressError(`--web ${JSON.stringify(spec)}: missing host before ':'; ${EXAMPLES}`);
  if (portText === undefined) return { host, port: 0 };
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 0 && port <= 65535)) throw new WebAddressError(`--web ${JSON.stringify(spec)}: port ${JSON.stringify(portText)} is not a number from 0 to 65535; ${EXAMPLES}`);
  return { host, port };
}

/** The stdout lines announcing a running web console; tests and scripts match on them. */
export function webConsoleLines(web: Pick<WebConsole, 'url' | 'readOnlyUrl'>): string[] {
  return [`tsvmm: web console at ${web.url}`, `tsvmm: read-only web console at ${web.readOnlyUrl}`];
}
