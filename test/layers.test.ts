// The layers of docs/architecture.md, held against the code: every project source file is read
// with the TypeScript compiler (imports, re-exports, dynamic import(), require(), and
// `new URL('./x.ts', import.meta.url)` worker and plugin entry points), and an import that a
// layer may not make, or a circle of imports, fails the test with the file and the line.
// Tests and benchmarks are clients of every layer and are not checked.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Bottom to top; each layer may import itself and what it lists (the layers below it that it
 * needs). web sits beside cli, not above vmm: it owns its console interface and imports nothing
 * of the VMM. devices reach native code only through the device processes' module.
 */
const LAYERS: readonly { name: string; paths: readonly string[]; may: readonly string[] }[] = [
  { name: 'base', paths: ['base/'], may: [] },
  { name: 'wire', paths: ['wire/'], may: ['base'] },
  { name: 'native', paths: ['native/'], may: ['wire', 'base'] },
  { name: 'devices', paths: ['devices/'], may: ['native/device', 'wire', 'base'] },
  { name: 'firmware', paths: ['firmware/'], may: ['base'] },
  { name: 'hypervisors', paths: ['hypervisors/'], may: ['devices', 'firmware', 'native', 'wire', 'base'] },
  { name: 'vmm', paths: ['vmm/'], may: ['hypervisors', 'devices', 'firmware', 'native', 'wire', 'base'] },
  { name: 'web', paths: ['web/'], may: [] },
  { name: 'cli', paths: ['cli/'], may: ['web', 'vmm', 'hypervisors', 'devices', 'firmware', 'native', 'wire', 'base'] },
  { name: 'bin', paths: ['bin/'], may: ['cli'] },
];
/** Files of a layer that only some layers may reach: `native/device` is native/device.ts (and what it loads). */
const NARROW: Record<string, (file: string) => boolean> = {
  'native/device': (f) => f === 'native/device.ts' || f === 'native/load.ts',
};

interface Edge {
  from: string;
  to: string;
  line: number;
  text: string;
}

function sourceFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts', '*.js'], { cwd: ROOT, encoding: 'utf8' });
  return listed.split('\n').filter((f) => f && existsSync(join(ROOT, f)) && LAYERS.some((l) => l.paths.some((p) => f.startsWith(p))))
    .filter((f) => !f.endsWith('.test.ts') && !f.startsWith('web/page/') && !f.includes('/build/'));
}

function layerOf(file: string): string | undefined {
  return LAYERS.find((l) => l.paths.some((p) => file.startsWith(p)))?.name;
}

/** Every project file `file` refers to, with where. */
function importsOf(file: string): Edge[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('.js') ? ts.ScriptKind.JS : ts.ScriptKind.TS);
  const edges: Edge[] = [];
  const add = (node: ts.Node, spec: string) => {
    if (!spec.startsWith('./') && !spec.startsWith('../')) return; // node: builtins and packages
    const target = relative(ROOT, resolve(dirname(join(ROOT, file)), spec));
    const line = sf.getLineAndCharacterOfPosition(node.getStart()).line + 1;
    edges.push({ from: file, to: target, line, text: node.getText().split('\n')[0]! });
  };
  const isImportMetaUrl = (n: ts.Node) =>
    ts.isPropertyAccessExpression(n) && n.name.text === 'url' && ts.isMetaProperty(n.expression) && n.expression.keywordToken === ts.SyntaxKind.ImportKeyword;
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node, node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.arguments[0] && ts.isStringLiteralLike(node.arguments[0])) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) add(node, node.arguments[0].text);
    } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL' && node.arguments?.length === 2) {
      const [spec, base] = node.arguments;
      if (spec && ts.isStringLiteralLike(spec) && base && isImportMetaUrl(base) && /\.(ts|js)$/.test(spec.text)) add(node, spec.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return edges;
}

function allowed(from: string, to: string): boolean {
  const a = layerOf(from);
  const b = layerOf(to);
  if (!a || !b || a === b) return true;
  const may = LAYERS.find((l) => l.name === a)!.may;
  return may.includes(b) || may.some((m) => NARROW[m]?.(to));
}

/** Strongly connected components of more than one file (or a file importing itself). */
function circles(edges: readonly Edge[]): string[][] {
  const out = new Map<string, string[]>();
  for (const e of edges) out.set(e.from, [...(out.get(e.from) ?? []), e.to]);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let counter = 0;
  const strongConnect = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of out.get(v) ?? []) {
      if (!index.has(w)) {
        strongConnect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (out.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of out.keys()) if (!index.has(v)) strongConnect(v);
  return found;
}

describe('import layers (docs/architecture.md)', () => {
  const files = sourceFiles();
  const edges = files.flatMap(importsOf);

  test('the reader sees the whole project and every kind of reference', () => {
    expect(files.length).toBeGreaterThan(100);
    // One of each kind, so a reader that stopped seeing one would fail here, not pass silently.
    const has = (from: string, to: string) => edges.some((e) => e.from === from && e.to === to);
    expect(has('cli/main.ts', 'cli/run.ts')).toBe(true); // import
    expect(has('hypervisors/backend.ts', 'base/cpu-state.ts')).toBe(true); // export ... from
    expect(has('hypervisors/kvm/descriptor.ts', 'hypervisors/kvm/kvm.ts')).toBe(true); // import()
    expect(has('vmm/virtual-machine.ts', 'vmm/vcpu-worker.ts')).toBe(true); // new URL(..., import.meta.url)
    expect(has('bin/tsvmm.js', 'cli/main.ts')).toBe(true); // a .js file
  });

  test('the rules refuse what they must', () => {
    expect(allowed('base/slots.ts', 'vmm/machine.ts')).toBe(false);
    expect(allowed('hypervisors/kvm/probe.ts', 'vmm/platform.ts')).toBe(false);
    expect(allowed('devices/plugin-sdk/plugin.ts', 'native/vmm.ts')).toBe(false);
    expect(allowed('devices/plugin-sdk/plugin.ts', 'native/device.ts')).toBe(true);
    expect(allowed('web/server.ts', 'vmm/console-hub.ts')).toBe(false);
    expect(allowed('cli/run.ts', 'web/server.ts')).toBe(true);
    const e = (from: string, to: string): Edge => ({ from, to, line: 1, text: '' });
    expect(circles([e('a', 'b'), e('b', 'c'), e('c', 'a'), e('c', 'd')])).toEqual([['a', 'b', 'c']]);
  });

  test('every reference points at a file that exists', () => {
    const missing = edges.filter((e) => !existsSync(join(ROOT, e.to)));
    expect(missing.map((e) => `${e.from}:${e.line}: ${e.text}`)).toEqual([]);
  });

  test('no layer imports a layer it may not (a lower one never imports a higher one)', () => {
    const forbidden = edges.filter((e) => !allowed(e.from, e.to));
    expect(forbidden.map((e) => `${e.from}:${e.line} (${layerOf(e.from)}) -> ${e.to} (${layerOf(e.to)}): ${e.text}`)).toEqual([]);
  });

  test('no circle of imports', () => {
    expect(circles(edges).map((c) => c.join(' -> '))).toEqual([]);
  });
});
