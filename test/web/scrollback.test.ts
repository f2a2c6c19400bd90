import { describe, expect, test } from 'vitest';
import { Scrollback } from '../../web/scrollback.ts';

describe('Scrollback', () => {
  test('holds everything until full, then the last `capacity` bytes', () => {
    const s = new Scrollback(8);
    s.write(Buffer.from('abc'));
    expect(s.slice().toString()).toBe('abc');
    s.write(Buffer.from('defgh'));
    expect(s.slice().toString()).toBe('abcdefgh');
    s.write(Buffer.from('ij'));
    expect(s.slice().toString()).toBe('cdefghij');
    expect([s.start, s.total]).toEqual([2, 10]);
  });

  test('a write longer than the ring keeps its tail', () => {
    const s = new Scrollback(4);
    s.write(Buffer.from('xy'));
    s.write(Buffer.from('0123456789'));
    expect(s.slice().toString()).toBe('6789');
    expect(s.total).toBe(12);
  });

  test('slices by absolute position across the wrap', () => {
    const s = new Scrollback(5);
    s.write(Buffer.from('abcdefg')); // holds cdefg at positions 2..7
    expect(s.slice(3, 6).toString()).toBe('def');
    expect(s.slice(6).toString()).toBe('g');
    expect(s.slice(7).length).toBe(0);
  });

  test('refuses ranges it no longer holds', () => {
    const s = new Scrollback(4);
    s.write(Buffer.from('abcdef'));
    expect(() => s.slice(1, 3)).toThrow(/outside the held range \[2, 6\)/);
    expect(() => s.slice(2, 7)).toThrow(RangeError);
  });

  test('slices are copies, unaffected by later writes', () => {
    const s = new Scrollback(4);
    s.write(Buffer.from('abcd'));
    const snap = s.slice();
    s.write(Buffer.from('wxyz'));
    expect(snap.toString()).toBe('abcd');
  });

  test('matches a simple model over many random writes', () => {
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    const cap = 97;
    const s = new Scrollback(cap);
    let all = Buffer.alloc(0);
    for (let i = 0; i < 2000; i++) {
      const chunk = Buffer.from(Array.from({ length: rand(150) }, () => rand(256)));
      s.write(chunk);
      all = Buffer.concat([all, chunk]);
      expect(s.total).toBe(all.length);
      expect(s.slice().equals(all.subarray(Math.max(0, all.length - cap)))).toBe(true);
      const from = s.start + rand(s.total - s.start + 1);
      expect(s.slice(from).equals(all.subarray(from))).toBe(true);
    }
  });

  test('rejects a non-positive capacity', () => {
    expect(() => new Scrollback(0)).toThrow(/positive integer/);
  });
});
