// `npm run bundle`: src/ into dist/vfioctl.cjs, one CommonJS file that bin/vfioctl loads
// through V8's code cache (scripts/code-cache.cjs makes it).
//  - CommonJS, not ESM: Node starts a CommonJS entry sooner, and code run from a cache
//    (vm.Script) cannot use import() without an experimental hook; so every import() here
//    becomes a require().
//  - execa, ESM only and only needed by commands that run programs, is bundled apart into
//    dist/execa.cjs and required on first use: inside the main bundle it would double the
//    code every start-up reads and loads.
//  - cli-table3, only needed to draw the table on a terminal, is bundled apart into
//    dist/cli-table3.cjs (required when a table is drawn) with a string-width that measures
//    ASCII without rebuilding two large regular expressions per call
//    (scripts/fast-string-width.cjs).
//  - koffi (the FFI behind probe's ioctls) stays external: a native module, required from
//    node_modules only when probe or reset-plan --verify runs.
//  - commander gets node:child_process through scripts/lazy-child-process.cjs, and chalk
//    no colour detection of its own (scripts/chalk-no-detect.mjs): both cost start-up time
//    for nothing vfioctl uses.
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve, sep } from 'node:path';
import { build } from 'esbuild';

// The marker bin/vfioctl looks for, from bin/vfioctl itself (requiring it runs nothing).
const { ID_MARK } = createRequire(import.meta.url)('../bin/vfioctl');

const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning' };

await build({ ...common, entryPoints: ['node_modules/execa/index.js'], outfile: 'dist/execa.cjs' });
await build({
  ...common,
  entryPoints: ['node_modules/cli-table3/index.js'],
  outfile: 'dist/cli-table3.cjs',
  plugins: [
    {
      name: 'fast-string-width',
      setup(b) {
        b.onResolve({ filter: /^string-width$/ }, () => ({ path: resolve('scripts/fast-string-width.cjs') }));
      },
    },
  ],
});
await build({
  ...common,
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/vfioctl.cjs',
  // Without comments and indentation the bundle is a third smaller, and ASCII only: a
  // comment's "→" or "§" made V8 hold all of it as a two-byte string, and decoding it
  // took 1.7 ms of every start-up instead of 0.4. Names are kept (stack traces stay readable).
  minifyWhitespace: true,
  supported: { 'dynamic-import': false },
  plugins: [
    {
      name: 'execa-apart',
      setup(b) {
        b.onResolve({ filter: /^execa$/ }, () => ({ path: './execa.cjs', external: true }));
        b.onResolve({ filter: /^cli-table3$/ }, () => ({ path: './cli-table3.cjs', external: true }));
        // koffi loads a native binary that its package picks per platform: required from
        // node_modules at run time, and only by probe and reset-plan --verify.
        b.onResolve({ filter: /^koffi$/ }, () => ({ path: 'koffi', external: true }));
      },
    },
    {
      name: 'chalk-no-detect',
      setup(b) {
        b.onResolve({ filter: /^#supports-color$/ }, () => ({ path: resolve('scripts/chalk-no-detect.mjs') }));
      },
    },
    {
      name: 'commander-lazy-child-process',
      setup(b) {
        b.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
          args.importer.includes(`${sep}node_modules${sep}commander${sep}`) ? { path: resolve('scripts/lazy-child-process.cjs') } : undefined);
      },
    },
  ],
});

// esbuild escapes non-ASCII in strings; anything else left would make the source two-byte again.
const bundled = readFileSync('dist/vfioctl.cjs');
const wide = bundled.findIndex((b) => b >= 0x80);
if (wide >= 0) throw new Error(`dist/vfioctl.cjs: non-ASCII byte at offset ${wide}: ${JSON.stringify(bundled.subarray(Math.max(0, wide - 40), wide + 8).toString('utf8'))}`);

// The id that ties dist/vfioctl.cjs.cache to this bundle (bin/vfioctl checks it).
const id = createHash('sha1').update(bundled).digest('hex');
appendFileSync('dist/vfioctl.cjs', `${ID_MARK}${id}\n`);
