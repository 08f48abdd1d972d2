'use strict';
// Build step after the bundle: run `vfioctl groups` in-process on a captured lab tree so
// V8 compiles what it uses, then save V8's code cache for the bundle, prefixed with the
// bundle's id (see bin/vfioctl). The cache holds the functions compiled during those runs,
// so `groups` starts without compiling them; other commands compile what they add. Without
// the tree the cache is still made, from the bundle's top level only.
const fs = require('node:fs');
const path = require('node:path');
const { loadBundle, BUNDLE } = require('../bin/vfioctl');

const ROOT = path.join(__dirname, '..', 'test', 'fixtures', 'lab-switch', 'host');
// Only what start-up time matters most for: every extra function makes the cache, which
// each start-up reads and deserializes, bigger.
const RUNS = [
  ['groups', '--json'],
  ['groups'],
];

async function main() {
  const { exports: vfioctl, script, id } = loadBundle(BUNDLE, { useCache: false });
  if (id === null) throw new Error(`code cache: ${BUNDLE} has no bundle id (run scripts/bundle.mjs)`);
  const sink = { write: () => true };
  let trained = 0;
  if (fs.existsSync(ROOT)) {
    for (const args of RUNS) {
      for (const isTTY of [false, true]) {
        const code = await vfioctl.run(['--root', ROOT, ...args], { stdout: sink, stderr: sink, env: {}, isTTY, runner: null, readStdin: async () => '' });
        if (code !== 0) throw new Error(`code cache: training run "vfioctl ${args.join(' ')}" exited ${code}`);
        trained++;
      }
    }
  }
  const data = script.createCachedData();
  fs.writeFileSync(BUNDLE + '.cache', Buffer.concat([Buffer.from(id, 'latin1'), data]));
  console.error(`code cache: ${(data.length / 1024).toFixed(0)} KiB after ${trained} training runs`);
}

main().catch((err) => {
  console.error(err.message);
  process.exitCode = 1;
});
