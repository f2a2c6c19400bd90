import { describe, expect, test } from 'vitest';
import { encode, MAX_CONTROL_BYTES, parseClientMessage, parseServerMessage } from '../../web/protocol.ts';
import { TokenBucket } from '../../web/rate-limit.ts';
import { consoleBytesToText } from '../../web/text-export.ts';

describe('control frames from viewers', () => {
  test.each([
    [{ type: 'resize', cols: 80, rows: 24 }],
    [{ type: 'console', console: 'hvc0' }],
    [{ type: 'power', action: 'reset' }],
    [{ type: 'power', action: 'poweroff' }],
    [{ type: 'ping', t: 1.5 }],
    [{ type: 'pong', t: 7 }],
  ])('accepts %j and round-trips it', (m) => {
    expect(parseClientMessage(encode(m as never))).toEqual({ ok: true, message: m });
  });

  test('drops unknown fields instead of passing them on', () => {
    expect(parseClientMessage('{"type":"resize","cols":100,"rows":30,"evil":1}')).toEqual({ ok: true, message: { type: 'resize', cols: 100, rows: 30 } });
  });

  test.each([
    ['not json', /not JSON/],
    ['[1,2]', /object with a string "type"/],
    ['{"type":3}', /string "type"/],
    ['{"type":"resize","cols":0,"rows":24}', /cols and rows/],
    ['{"type":"resize","cols":80.5,"rows":24}', /cols and rows/],
    ['{"type":"resize","cols":80,"rows":100000}', /cols and rows/],
    ['{"type":"console","console":"ttyS1"}', /ttyS0, hvc0/],
    ['{"type":"power","action":"shutdown -h"}', /reset.*poweroff/],
    ['{"type":"ping"}', /numeric "t"/],
    ['{"type":"exec","cmd":"rm"}', /unknown control message type "exec"/],
  ])('refuses %s', (text, error) => {
    const p = parseClientMessage(text);
    expect(p.ok).toBe(false);
    if (!p.ok) expect(p.error).toMatch(error);
  });

  test('refuses oversized control frames before parsing them', () => {
    const p = parseClientMessage(JSON.stringify({ type: 'ping', t: 1, pad: 'x'.repeat(MAX_CONTROL_BYTES) }));
    expect(p).toEqual({ ok: false, error: `control message longer than ${MAX_CONTROL_BYTES} bytes` });
  });

  test('the page refuses unknown server messages', () => {
    expect(parseServerMessage('{"type":"status","state":"running","backend":"kvm"}').ok).toBe(true);
    expect(parseServerMessage('{"type":"eval","code":"x"}').ok).toBe(false);
  });
});

describe('input rate bound', () => {
  test('allows a burst, then only the refill rate', () => {
    let now = 0;
    const b = new TokenBucket(1000, 500, () => now);
    expect(b.take(500)).toBe(true);
    expect(b.take(1)).toBe(false);
    now += 100; // +100 tokens
    expect(b.take(101)).toBe(false); // all-or-nothing: the refused take costs nothing
    expect(b.take(100)).toBe(true);
    now += 10_000; // refills only up to the burst
    expect(b.take(501)).toBe(false);
    expect(b.take(500)).toBe(true);
  });
});

describe('scrollback as text', () => {
  test('removes colours, cursor movement and titles; normalises line ends', () => {
    const raw = '\x1b]0;root@guest: ~\x07\x1b[1;32mroot@guest\x1b[0m:~# ls\r\n\x1b[01;34mbin\x1b[0m  etc\r\n\x1b[?2004h';
    expect(consoleBytesToText(Buffer.from(raw))).toBe('root@guest:~# ls\nbin  etc\n');
  });

  test('applies backspace erasures and carriage-return overwrites', () => {
    expect(consoleBytesToText(Buffer.from('echo abx\b \bc\r\n'))).toBe('echo abc\n');
    expect(consoleBytesToText(Buffer.from('progress 10%\rprogress 100%\n'))).toBe('progress 100%\n');
    expect(consoleBytesToText(Buffer.from('abcdef\rXY\n'))).toBe('XYcdef\n');
  });

  test('keeps UTF-8 text and drops stray control bytes', () => {
    expect(consoleBytesToText(Buffer.from('grüße\x00\x07 ✓\n'))).toBe('grüße ✓\n');
  });
});
