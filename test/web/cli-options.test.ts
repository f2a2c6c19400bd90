import { describe, expect, test } from 'vitest';
import { parseWebAddress, webConsoleLines } from '../../web/cli-options.ts';

describe('--web [HOST:]PORT', () => {
  test.each([
    [undefined, '127.0.0.1', 0],
    ['', '127.0.0.1', 0],
    ['8080', '127.0.0.1', 8080],
    ['0', '127.0.0.1', 0],
    ['127.0.0.1:0', '127.0.0.1', 0],
    ['0.0.0.0:8080', '0.0.0.0', 8080],
    ['localhost', 'localhost', 0],
    ['[::1]:9000', '::1', 9000],
    ['[::1]', '::1', 0],
    ['::1', '::1', 0],
  ])('%j is host %s port %d', (spec, host, port) => {
    expect(parseWebAddress(spec)).toEqual({ host, port });
  });

  test.each([
    ['127.0.0.1:http', /port "http" is not a number from 0 to 65535/],
    ['127.0.0.1:70000', /port "70000"/],
    ['127.0.0.1:', /port ""/],
    [':8080', /missing host/],
  ])('%j is refused with a hint', (spec, error) => {
    expect(() => parseWebAddress(spec)).toThrow(error);
    expect(() => parseWebAddress(spec)).toThrow(/expected \[HOST:\]PORT, e\.g\. 8080/);
  });

  test('announces both URLs in the documented form', () => {
    expect(webConsoleLines({ url: 'http://127.0.0.1:1/?token=a', readOnlyUrl: 'http://127.0.0.1:1/?token=b' })).toEqual([
      'tsvmm: web console at http://127.0.0.1:1/?token=a',
      'tsvmm: read-only web console at http://127.0.0.1:1/?token=b',
    ]);
  });
});
