// The web console server over real sockets: access control, read-only enforcement, bounds, and
// the console protocol, with a real ConsoleHub whose guest side records what reaches it.
import { request } from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import { ConsoleHub, type ConsoleName, type PowerAction } from '../../vmm/console-hub.ts';
import { OriginPolicy, Tokens } from '../../web/access.ts';
import { CloseCode } from '../../web/protocol.ts';
import { startWebConsole, type WebConsole, type WebConsoleOptions } from '../../web/server.ts';
import { WsViewer, wsUrl } from './support/ws-viewer.ts';

interface Guest {
  hub: ConsoleHub;
  input: { console: ConsoleName; text: string }[];
  power: PowerAction[];
}

function guest(): Guest {
  const g: Guest = { input: [], power: [], hub: undefined as never };
  g.hub = new ConsoleHub('test', {
    input: (console, bytes) => g.input.push({ console, text: Buffer.from(bytes).toString() }),
    power: (action) => g.power.push(action),
  });
  g.hub.setStatus({ state: 'running', backend: 'test' });
  return g;
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function serve(g: Guest, options: Partial<WebConsoleOptions> = {}): Promise<WebConsole> {
  const wc = await startWebConsole({ hub: g.hub, ...options });
  open.push(wc);
  return wc;
}

async function viewer(url: string, options = {}): Promise<WsViewer> {
  const v = new WsViewer(url, options);
  open.push(v);
  await v.opened();
  await v.control('console');
  return v;
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    })
      .on('error', reject)
      .end();
  });
}

function tokenOf(url: string): string {
  return new URL(url).searchParams.get('token')!;
}

describe('tokens and origins', () => {
  test('tokens are random, distinct, and checked exactly', () => {
    const t = new Tokens();
    expect(t.fullToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Tokens().fullToken).not.toBe(t.fullToken);
    expect(t.check(t.fullToken)).toBe('full');
    expect(t.check(t.readOnlyToken)).toBe('read-only');
    expect(t.check(t.fullToken.slice(0, -1))).toBeUndefined();
    expect(t.check(`${t.fullToken}x`)).toBeUndefined();
    expect(t.check('')).toBeUndefined();
    expect(t.check(null)).toBeUndefined();
    expect(() => new Tokens('same', 'same')).toThrow(/must differ/);
  });

  test('Origin and Host must name this server', () => {
    const p = new OriginPolicy('127.0.0.1', 8080, ['https://console.example']);
    expect(p.originAllowed('http://127.0.0.1:8080')).toBe(true);
    expect(p.originAllowed('http://localhost:8080')).toBe(true);
    expect(p.originAllowed('https://console.example')).toBe(true);
    expect(p.originAllowed(undefined)).toBe(true); // not a browser
    expect(p.originAllowed('http://127.0.0.1:8081')).toBe(false);
    expect(p.originAllowed('http://evil.example:8080')).toBe(false);
    expect(p.originAllowed('null')).toBe(false);
    expect(p.hostAllowed('127.0.0.1:8080')).toBe(true);
    expect(p.hostAllowed('LOCALHOST:8080')).toBe(true);
    expect(p.hostAllowed('rebound.evil.example:8080')).toBe(false);
    expect(p.hostAllowed(undefined)).toBe(false);
  });
});

describe('the HTTP side', () => {
  test('serves the page only with a token, and the bundled assets it references', async () => {
    const wc = await serve(guest());
    expect(wc.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{43}$/);
    const page = await get(wc.url);
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect((await get(wc.readOnlyUrl)).status).toBe(200);
    const base = wc.url.replace(/\?.*/, '');
    for (const bad of [base, `${base}?token=`, `${base}?token=${tokenOf(wc.url).slice(1)}`]) {
      const r = await get(bad);
      expect(r.status).toBe(401);
      expect(r.body).toMatch(/missing or invalid access token/);
    }
    const script = /<script src="([^"]+)"/.exec(page.body)![1]!;
    const js = await get(`${base.slice(0, -1)}${script}`);
    expect(js.status).toBe(200);
    expect(js.body).toContain('xterm');
    expect((await get(`${base}nope?token=${tokenOf(wc.url)}`)).status).toBe(404);
  });

  test('refuses a Host header that is not this server (DNS rebinding)', async () => {
    const wc = await serve(guest());
    const r = await get(wc.url, { Host: `rebound.example:${wc.port}` });
    expect(r.status).toBe(403);
  });

  test('serves the scrollback as text to both kinds of viewer', async () => {
    const g = guest();
    const wc = await serve(g);
    g.hub.output('ttyS0', Buffer.from('\x1b[32mhello\x1b[0m\r\nworld\r\n'));
    g.hub.output('hvc0', Buffer.from('on hvc0\r\n'));
    for (const u of [wc.url, wc.readOnlyUrl]) {
      const r = await get(u.replace('/?', '/scrollback?'));
      expect(r.status).toBe(200);
      expect(r.headers['content-disposition']).toMatch(/attachment; filename="tsvmm-ttyS0-scrollback.txt"/);
      expect(r.body).toBe('hello\nworld\n');
    }
    expect((await get(`${wc.url.replace('/?', '/scrollback?')}&console=hvc0`)).body).toBe('on hvc0\n');
    expect((await get(`${wc.url.replace('/?', '/scrollback?')}&console=ttyS9`)).status).toBe(400);
    expect((await get(wc.url.replace(/\?.*/, 'scrollback'))).status).toBe(401);
  });

  test('a port in use gives an error naming the fix', async () => {
    const wc = await serve(guest());
    await expect(startWebConsole({ hub: guest().hub, port: wc.port })).rejects.toThrow(/EADDRINUSE: the port is in use; choose another/);
  });
});

describe('WebSocket access', () => {
  test('refuses upgrades without a valid token, from a foreign Origin, or on another path', async () => {
    const wc = await serve(guest());
    const good = wsUrl(wc.url);
    const cases: [string, object, RegExp][] = [
      [wsUrl(wc.url, { token: '' }), {}, /HTTP 401/],
      [wsUrl(wc.url, { token: 'guess' }), {}, /HTTP 401/],
      [good, { origin: 'http://evil.example' }, /HTTP 403/],
      [good, { origin: `http://127.0.0.1:${wc.port + 1}` }, /HTTP 403/],
      [good.replace('/ws?', '/other?'), {}, /HTTP 404/],
      [wsUrl(wc.url, { console: 'ttyS9' }), {}, /HTTP 400/],
    ];
    for (const [url, options, error] of cases) {
      const v = new WsViewer(url, options);
      await expect(v.opened()).rejects.toThrow(error);
    }
    expect(wc.viewerCount()).toBe(0);
    const ok = await viewer(good, { origin: `http://localhost:${wc.port}` });
    expect(ok.controls[0]).toMatchObject({ type: 'hello', access: 'full', consoles: ['ttyS0', 'hvc0'] });
  });

  test('a read-only viewer sees output but its input and power requests never reach the guest', async () => {
    const g = guest();
    const wc = await serve(g);
    const ro = await viewer(wsUrl(wc.readOnlyUrl));
    expect(ro.controls[0]).toMatchObject({ type: 'hello', access: 'read-only' });
    ro.send(Buffer.from('rm -rf /\r'));
    await ro.control('error');
    ro.send(JSON.stringify({ type: 'power', action: 'poweroff' }));
    await ro.until(() => ro.controls.filter((m) => m.type === 'error').length === 2, 'two errors');
    expect(ro.controls.filter((m) => m.type === 'error').map((m) => m.type === 'error' && m.code)).toEqual(['read-only', 'read-only']);
    g.hub.output('ttyS0', Buffer.from('still watching'));
    await ro.until(() => ro.text() === 'still watching', 'output');
    expect(g.input).toEqual([]);
    expect(g.power).toEqual([]);
  });

  test('full-access input and power reach the guest, and the console stays connected', async () => {
    const g = guest();
    const wc = await serve(g);
    const v = await viewer(wsUrl(wc.url));
    v.send(Buffer.from('ls\r'));
    v.send(JSON.stringify({ type: 'power', action: 'reset' }));
    v.send(JSON.stringify({ type: 'ping', t: 42 }));
    expect(await v.control('pong')).toEqual({ type: 'pong', t: 42 });
    expect(g.input).toEqual([{ console: 'ttyS0', text: 'ls\r' }]);
    expect(g.power).toEqual(['reset']);
    g.hub.setStatus({ state: 'stopped', backend: 'test', exitCode: 3, reason: 'powered off' });
    const n = v.controls.length;
    await v.until(() => v.controls.slice(n).some((m) => m.type === 'status'), 'status');
    expect(v.controls.slice(n).find((m) => m.type === 'status')).toEqual({ type: 'status', state: 'stopped', backend: 'test', exitCode: 3, reason: 'powered off' });
    expect(wc.viewerCount()).toBe(1);
  });

  test('bad control frames get an error, oversized frames close the connection', async () => {
    const wc = await serve(guest(), { maxInputFrameBytes: 1024 });
    const v = await viewer(wsUrl(wc.url));
    v.send('{"type":"launch"}');
    expect(await v.control('error')).toMatchObject({ code: 'bad-message', message: expect.stringMatching(/unknown control message type/) });
    v.send(Buffer.alloc(1025));
    expect((await v.closed).code).toBe(CloseCode.tooBig);
  });

  test('input over the rate bound is refused, not queued', async () => {
    const g = guest();
    const wc = await serve(g, { inputBytesPerSecond: 1, inputBurstBytes: 100 });
    const v = await viewer(wsUrl(wc.url));
    v.send(Buffer.alloc(60, 'a'));
    v.send(Buffer.alloc(60, 'b'));
    expect(await v.control('error')).toMatchObject({ code: 'input-rate' });
    expect(g.input.map((i) => i.text)).toEqual(['a'.repeat(60)]);
  });

  test('viewers beyond the limit are told why', async () => {
    const wc = await serve(guest(), { maxViewers: 1 });
    await viewer(wsUrl(wc.url));
    const extra = new WsViewer(wsUrl(wc.url));
    expect(await extra.closed).toEqual({ code: CloseCode.tooManyViewers, reason: 'too many viewers (limit 1)' });
  });

  test('a viewer that stays silent past two keepalive intervals is dropped with a reason', async () => {
    const wc = await serve(guest(), { keepaliveMs: 100 });
    const v = new WsViewer(wsUrl(wc.url), { autoPong: false });
    // This client never answers the JSON pings.
    const closed = await v.closed;
    expect(closed.code).toBe(CloseCode.keepaliveTimeout);
    expect(closed.reason).toMatch(/no message from viewer/);
    expect(v.controls.some((m) => m.type === 'ping')).toBe(true);
  });

  test('closing the server tells viewers it is shutting down', async () => {
    const wc = await startWebConsole({ hub: guest().hub });
    const v = await viewer(wsUrl(wc.url));
    await wc.close();
    expect(await v.closed).toEqual({ code: 1001, reason: 'tsvmm is shutting down' });
  });
});

describe('one console, many viewers', () => {
  test('every viewer sees the same output; a late viewer first gets the scrollback', async () => {
    const g = guest();
    const wc = await serve(g, { scrollbackBytes: 16 });
    const a = await viewer(wsUrl(wc.url));
    g.hub.output('ttyS0', Buffer.from('0123456789'));
    g.hub.output('ttyS0', Buffer.from('abcdefghij'));
    await a.until(() => a.bytes === 20, '20 bytes');
    const b = await viewer(wsUrl(wc.readOnlyUrl));
    expect(b.controls.find((m) => m.type === 'console')).toEqual({ type: 'console', console: 'ttyS0', scrollback: 16 });
    g.hub.output('ttyS0', Buffer.from('XYZ'));
    await b.until(() => b.text().endsWith('XYZ'), 'live output');
    await a.until(() => a.text().endsWith('XYZ'), 'live output');
    expect(a.text()).toBe('0123456789abcdefghijXYZ');
    expect(b.text()).toBe('456789abcdefghijXYZ'); // last 16 bytes, then live, nothing twice
  });

  test('output written before the connecting viewer attached is not sent twice', async () => {
    const g = guest();
    const wc = await serve(g);
    const a = await viewer(wsUrl(wc.url));
    // Written in the same turn as b's attach: it is both in the scrollback and not yet flushed.
    const b = new WsViewer(wsUrl(wc.url));
    open.push(b);
    await b.opened();
    g.hub.output('ttyS0', Buffer.from('once'));
    await b.control('console');
    g.hub.output('ttyS0', Buffer.from('!'));
    await a.until(() => a.text() === 'once!', 'a');
    await b.until(() => b.text().endsWith('!'), 'b');
    expect(b.text()).toBe('once!');
  });

  test('console selection switches the stream and replays that console', async () => {
    const g = guest();
    const wc = await serve(g);
    g.hub.output('ttyS0', Buffer.from('serial'));
    g.hub.output('hvc0', Buffer.from('virtio'));
    const v = await viewer(wsUrl(wc.url));
    await v.until(() => v.text() === 'serial', 'ttyS0 scrollback');
    const n = v.controls.length;
    v.send(JSON.stringify({ type: 'console', console: 'hvc0' }));
    expect(await v.control('console', n)).toEqual({ type: 'console', console: 'hvc0', scrollback: 6 });
    await v.until(() => v.text() === 'serialvirtio', 'hvc0 scrollback');
    g.hub.output('ttyS0', Buffer.from('-not-shown-'));
    g.hub.output('hvc0', Buffer.from('+'));
    v.send(Buffer.from('x'));
    v.send(JSON.stringify({ type: 'ping', t: 1 })); // answered after 'x' was handled
    await v.control('pong');
    await v.until(() => v.text().endsWith('+'), 'hvc0 output');
    expect(v.text()).toBe('serialvirtio+');
    expect(g.input).toEqual([{ console: 'hvc0', text: 'x' }]);
    const direct = await viewer(wsUrl(wc.url, { console: 'hvc0' }));
    await direct.until(() => direct.text() === 'virtio+', 'hvc0 via URL');
  });

  test('a chunk larger than half the scrollback reaches viewers whole', async () => {
    const g = guest();
    const wc = await serve(g, { scrollbackBytes: 1000 });
    const v = await viewer(wsUrl(wc.url));
    g.hub.output('ttyS0', Buffer.alloc(300, 'a'));
    const big = Buffer.alloc(5000, 'b');
    g.hub.output('ttyS0', big);
    await v.until(() => v.bytes === 5300, 'all bytes');
    expect(v.text()).toBe('a'.repeat(300) + 'b'.repeat(5000));
  });
});
