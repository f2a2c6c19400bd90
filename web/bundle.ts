// The page's script and stylesheet, bundled by esbuild from web/page and node_modules
// (@xterm/xterm, @xterm/addon-fit) into memory when a server first needs them. No CDN, no build
// step, nothing written to disk: a fresh clone works right after `npm ci`, and the bundle can
// never be stale relative to the sources it is served from. It takes well under a second and is
// done once per process (the promise is cached), overlapping the server's start-up.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export interface Asset {
  /** Path the page references, content-addressed so it can be cached forever. */
  path: string;
  contentType: string;
  body: Buffer;
}

export interface PageBundle {
  html: Buffer;
  assets: Map<string, Asset>;
}

const pageDir = fileURLToPath(new URL('./page/', import.meta.url));

let cached: Promise<PageBundle> | undefined;

export function pageBundle(): Promise<PageBundle> {
  cached ??= build().catch((err: unknown) => {
    cached = undefined; // let a later request retry rather than caching the failure
    throw err;
  });
  return cached;
}

function hashed(name: string, ext: string, body: Buffer): string {
  return `/assets/${name}.${createHash('sha256').update(body).digest('hex').slice(0, 16)}.${ext}`;
}

async function build(): Promise<PageBundle> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (err) {
    throw new Error(`the web console page is bundled with esbuild, which is not installed: run \`npm ci\` (${String(err)})`);
  }
  const result = await esbuild.build({
    entryPoints: { app: `${pageDir}main.ts` },
    bundle: true,
    write: false,
    outdir: '/tsvmm-web', // names the outputs; nothing is written
    format: 'iife',
    platform: 'browser',
    target: ['chrome100', 'firefox100', 'safari15'],
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  let js: Buffer | undefined;
  let css: Buffer | undefined;
  for (const f of result.outputFiles) {
    if (f.path.endsWith('.js')) js = Buffer.from(f.contents);
    else if (f.path.endsWith('.css')) css = Buffer.from(f.contents);
  }
  if (!js || !css) throw new Error('esbuild did not produce the web console script and stylesheet');
  const script: Asset = { path: hashed('app', 'js', js), contentType: 'text/javascript; charset=utf-8', body: js };
  const style: Asset = { path: hashed('app', 'css', css), contentType: 'text/css; charset=utf-8', body: css };
  const template = await readFile(`${pageDir}index.html`, 'utf8');
  const html = template.replace('{{STYLE}}', style.path).replace('{{SCRIPT}}', script.path);
  return { html: Buffer.from(html), assets: new Map([script, style].map((a) => [a.path, a])) };
}
