'use strict';
// Build step after the bundle: run vfioctl in-process on captured lab trees so V8 compiles
// what those commands use, then save V8's code cache for the bundle, prefixed with the
// bundle's id (see bin/vfioctl). One cache per profile of bin/vfioctl's CACHE_PROFILES, each
// made in a process of its own so that it holds only what its own commands compiled:
// `groups` (and every command without a profile) from the first, `show` and `reset-plan`
// from `device`. Without the trees a cache is still made, from the bundle's top level only.
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { loadBundle, cachePathOf, CACHE_PROFILES, BUNDLE } = require('../bin/vfioctl');

const FIXTURES = path.join(__dirname, '..', 'test', 'fixtures');
// Only what start-up time matters most for: every extra function makes the cache, which
// each start-up of its commands reads and deserializes, bigger.
const RUNS = {
  '': [
    ['lab-switch', 'groups', '--json'],
    ['lab-switch', 'groups'],
  ],
  // A VF (SR-IOV links, a shared bus) and a function below a switch in a shared group.
  device: [
    ['lab-sriov', 'show', '0000:01:00.1', '--json'],
    ['lab-sriov', 'show', '0000:01:00.1'],
    ['lab-switch', 'reset-plan', '0000:03:00.0', '--json'],
    ['lab-switch', 'reset-plan', '0000:03:00.0'],
  ],
};

async function train(profile) {
  const runs = RUNS[profile];
  if (runs === undefined) throw new Error(`code cache: no training runs for profile "${profile}"`);
  const { exports: vfioctl, script, id } = loadBundle(BUNDLE, { useCache: false });
  if (id === null) throw new Error(`code cache: ${BUNDLE} has no bundle id (run scripts/bundle.mjs)`);
  const sink = { write: () => true };
  let trained = 0;
  for (const [tree, ...args] of runs) {
    const root = path.join(FIXTURES, tree, 'host');
    if (!fs.existsSync(root)) continue;
    for (const isTTY of [false, true]) {
      const code = await vfioctl.run(['--root', root, ...args], { stdout: sink, stderr: sink, env: {}, isTTY, runner: null, readStdin: async () => '' });
      if (code !== 0) throw new Error(`code cache: training run "vfioctl --root ${root} ${args.join(' ')}" exited ${code}`);
      trained++;
    }
  }
  const data = script.createCachedData();
  const file = cachePathOf(BUNDLE, profile);
  fs.writeFileSync(file, Buffer.concat([Buffer.from(id, 'latin1'), data]));
  console.error(`code cache: ${path.basename(file)}: ${(data.length / 1024).toFixed(0)} KiB after ${trained} training runs`);
}

async function main() {
  const at = process.argv.indexOf('--profile');
  if (at >= 0) return train(process.argv[at + 1] ?? '');
  for (const profile of new Set(Object.values(CACHE_PROFILES))) {
    execFileSync(process.execPath, [...process.execArgv, __filename, '--profile', profile], { stdio: 'inherit' });
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exitCode = 1;
});
