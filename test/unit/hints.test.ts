import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli, REPO, type CliOptions } from '../helpers/cli.js';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { labSpec } from '../helpers/lab-tree.js';

/**
 * Every hint names a command or a file change that works where it is printed. The scenarios
 * below make vfioctl print hints (stderr `hint:` lines, the --json error document's `hint`,
 * groups' `hint`, doctor's `fix`); each hint is checked for words that cannot help in its
 * context, and every vfioctl command line it suggests is run, in the same context, and must
 * not fail as a usage error or a missing device/group. To cover a new hint, add a scenario.
 * Suggested changes (bind, unbind, apply, vfs, grant, persist) run as --dry-run.
 */
interface Scenario {
  args: string[];
  root: string;
  opts?: CliOptions;
}

const { root: work, cleanup } = tempRoot('vfioctl-hints-');
test.after(cleanup);
const LAB = path.join(work, 'lab');
buildTree(LAB, labSpec());
const NO_IOMMU = path.join(work, 'no-iommu');
buildTree(NO_IOMMU, { devices: [{ bdf: '0000:00:02.0', id: '8086:46a6', class: '030000', driver: 'i915' }] });
const NO_IOMMU_OFF = path.join(work, 'no-iommu-off');
buildTree(NO_IOMMU_OFF, { devices: [{ bdf: '0000:00:02.0', id: '8086:46a6', class: '030000', driver: 'i915' }], cmdline: 'intel_iommu=off' });
/** A desired state that splits IOMMU group 4 (the pair behind the PCIe-to-PCI bridge). */
const APPLY_GROUP = path.join(work, 'split-group.json');
fs.writeFileSync(APPLY_GROUP, JSON.stringify({ schemaVersion: 1, devices: [{ match: '03:01.0', driver: 'vfio-pci' }] }));
const LOCK_NOW: CliOptions = { env: { NO_COLOR: '1', VFIOCTL_LOCK_TIMEOUT: '0' } };
const FULL = path.join(work, 'full');
fs.mkdirSync(FULL);
fs.writeFileSync(path.join(FULL, 'x'), '');
const CAPTURES = fs.readdirSync(path.join(REPO, 'test/fixtures')).filter((d) => d.startsWith('lab-')).flatMap((d) => ['host', 'vfio'].map((t) => path.join(REPO, 'test/fixtures', d, t)));

const SCENARIOS: Scenario[] = [
  { args: ['groups'], root: NO_IOMMU },
  { args: ['groups'], root: NO_IOMMU_OFF },
  { args: ['groups', '--device', '00:02.0'], root: NO_IOMMU },
  { args: ['groups', '--group', '99'], root: LAB },
  { args: ['groups', '--bogus'], root: LAB },
  { args: ['frob'], root: LAB },
  { args: ['show', '09:00.0'], root: LAB },
  { args: ['show', '5:0.0'], root: LAB },
  { args: ['show', 'nosuchthing'], root: LAB },
  { args: ['reset-plan', 'group:99'], root: LAB },
  { args: ['variants', '99:00.0'], root: LAB },
  { args: ['snapshot', FULL], root: LAB },
  { args: ['completion'], root: LAB },
  { args: ['doctor'], root: NO_IOMMU },
  { args: ['doctor'], root: LAB },
  ...CAPTURES.map((root) => ({ args: ['doctor'], root })),
  // The changing commands' refusals and failures (run on the lab tree; suggestions as --dry-run).
  { args: ['bind', '03:01.0', '--variant', 'vfio-pci'], root: LAB, opts: LOCK_NOW },
  { args: ['bind', '00:04.0'], root: LAB, opts: LOCK_NOW },
  { args: ['bind', '00:02.0'], root: LAB, opts: LOCK_NOW },
  { args: ['bind', '01:00.0', '--variant', 'nosuch'], root: LAB, opts: LOCK_NOW },
  { args: ['bind', '01:00.0', '--variant', '../x'], root: LAB, opts: LOCK_NOW },
  { args: ['unbind', '01:00.0', '--to', 'nosuch'], root: LAB, opts: LOCK_NOW },
  { args: ['apply', APPLY_GROUP], root: LAB, opts: LOCK_NOW },
  { args: ['vfs', '01:00.0', '--count', '2'], root: LAB, opts: LOCK_NOW },
  { args: ['grant', '01:00.0', '--user', '0'], root: LAB, opts: LOCK_NOW },
  { args: ['persist'], root: LAB, opts: LOCK_NOW },
];

/** Hints of one run: stderr `hint:` lines, and the JSON document's hint or doctor fixes. */
function hintsOf(stdout: string, stderr: string, json: boolean): string[] {
  const out = [...stderr.matchAll(/^hint: (.*)$/gm)].map((m) => m[1]!);
  if (json) {
    const doc = JSON.parse(stdout);
    if (doc.error?.hint) out.push(doc.error.hint);
    if (typeof doc.hint === 'string') out.push(doc.hint);
    for (const c of doc.checks ?? []) if (c.fix) out.push(c.fix);
  } else {
    out.push(...[...stdout.matchAll(/^hint: (.*)$/gm)].map((m) => m[1]!));
    out.push(...[...stdout.matchAll(/^\s+fix: (.*)$/gm)].map((m) => m[1]!));
  }
  return out;
}

/** The vfioctl command lines a hint suggests: quoted ones, or a hint that starts with one. */
function suggested(hint: string): string[][] {
  const lines = [...hint.matchAll(/'(vfioctl [^']*)'/g)].map((m) => m[1]!);
  if (lines.length === 0 && hint.startsWith('vfioctl ')) lines.push(hint.split(/\s*[(,;>]/)[0]!);
  // A redirection or pipe ends the vfioctl part (`vfioctl apply --export > FILE`).
  return lines.map((l) => l.split(/\s+[>|]/)[0]!.trim().split(/\s+/).slice(1));
}

/**
 * Placeholders in suggested commands, filled for the context. DIR is one folder: the snapshot a
 * hint suggests (run once) is the tree its `--root DIR` suggestion then reads.
 */
function fill(words: string[], root: string, device: string): string[] {
  return words.map((w) => ({ SELECTOR: device, DIR: path.join(work, 'snap'), FILE: APPLY_GROUP, COMMAND: 'groups', N: '0', USER: '0', U: '0' } as Record<string, string>)[w] ?? w);
}

const MUTATING = new Set(['bind', 'unbind', 'apply', 'persist', 'vfs', 'grant']);

test('every hint can be acted on where it is printed, and every vfioctl command it suggests runs', async () => {
  let checked = 0;
  let ran = 0;
  // A suggestion repeated in another context with the same tree runs once (snapshots are slow).
  const done = new Set<string>();
  for (const s of SCENARIOS) {
    for (const json of [false, true]) {
      const args = json ? [...s.args, '--json'] : s.args;
      const r = await cli(args, s.root, s.opts);
      const context = `vfioctl --root ${s.root} ${args.join(' ')}`;
      for (const hint of hintsOf(r.stdout, r.stderr, json)) {
        checked++;
        if (json) assert.doesNotMatch(hint, /\babove\b|\bbelow\b/, `${context}: a JSON consumer sees no "above": ${hint}`);
        assert.doesNotMatch(hint, /container/, `${context}: no container talk for a --root tree: ${hint}`);
        for (const words of suggested(hint)) {
          // (A snapshot is the same on every capture and costs a second: one is enough.)
          const key = words[0] === 'snapshot' ? words.join(' ') : `${s.root}\0${words.join(' ')}`;
          if (done.has(key)) continue;
          done.add(key);
          // Suggested commands run against the same tree unless they name their own --root.
          let argv = fill(words, s.root, '0000:00:00.0');
          const hasRoot = argv.includes('--root');
          const command = argv.find((w, i) => !w.startsWith('-') && argv[i - 1] !== '--root');
          if (command && MUTATING.has(command)) argv = [...argv, '--dry-run'];
          const out = await cli(argv, hasRoot ? undefined : s.root);
          ran++;
          assert.ok(![2, 3, 70].includes(out.code), `${context}: hint "${hint}" suggests "vfioctl ${argv.join(' ')}", which exits ${out.code}: ${out.stderr}`);
        }
      }
    }
  }
  assert.ok(checked >= 40, `only ${checked} hints seen`);
  assert.ok(ran >= 10, `only ${ran} suggested commands run`);
});

test('the sample tree the first-minute hint names is shipped and shows groups', async () => {
  const r = await cli(['--root', 'examples/hosts/switch', 'groups'], undefined);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^GROUP +VIABLE/);
  assert.ok(fs.existsSync(path.join(REPO, 'examples/hosts/switch/sys/kernel/iommu_groups')));
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  assert.ok(pkg.files.includes('schema'), 'the schemas are shipped with the package');
});

test('without the sample tree (an npm install: npm drops its symlinks) the hint names only doctor', async () => {
  const r = await cli(['groups'], NO_IOMMU, { packageDir: work });
  assert.match(r.stdout, new RegExp(`^hint: run 'vfioctl --root ${NO_IOMMU} doctor' to see what to change$`, 'm'));
});

test('hints name vfioctl as it was started: ./bin/vfioctl when it is not on PATH, vfioctl when it is', async () => {
  const { spawnSync } = await import('node:child_process');
  const env = { PATH: '/usr/bin:/bin', NO_COLOR: '1' };
  const viaPath = spawnSync('./bin/vfioctl', ['--root', NO_IOMMU, 'groups'], { cwd: REPO, encoding: 'utf8', env });
  assert.equal(viaPath.status, 0, viaPath.stderr);
  assert.match(viaPath.stdout, new RegExp(`^hint: run './bin/vfioctl --root ${NO_IOMMU} doctor'`, 'm'));
  assert.match(viaPath.stdout, /run '\.\/bin\/vfioctl --root examples\/hosts\/switch groups'/);
  const missing = spawnSync('./bin/vfioctl', ['--root', LAB, 'show', '09:00.0', '--json'], { cwd: REPO, encoding: 'utf8', env });
  assert.equal(JSON.parse(missing.stdout).error.hint, "run './bin/vfioctl groups' to list devices");
  const bin = path.join(work, 'pathbin');
  fs.mkdirSync(bin);
  fs.symlinkSync(path.join(REPO, 'bin/vfioctl'), path.join(bin, 'vfioctl'));
  const onPath = spawnSync('vfioctl', ['--root', LAB, 'show', '09:00.0'], { cwd: work, encoding: 'utf8', env: { ...env, PATH: `${bin}:${env.PATH}` } });
  assert.match(onPath.stderr, /^hint: run 'vfioctl groups' to list devices$/m);
});

test('the vfio-pci.ids fix of doctor names commands that run', async (t) => {
  const { root, cleanup: done } = tempRoot();
  t.after(done);
  buildTree(root, { ...labSpec(), cmdline: 'intel_iommu=on vfio_pci.ids=8086:10d3' });
  const r = await cli(['doctor', '--json'], root);
  const fix = r.json().checks.find((c: { id: string }) => c.id === 'vfio-pci-ids').fix as string;
  // The fix as a reader follows it: export into the file, then persist that file.
  const file = path.join(root, 'vfio.json');
  const steps = suggested(fix);
  assert.equal(steps.length, 2, fix);
  for (const words of steps) {
    const argv = fill(words, root, '0000:01:00.0').map((w) => (w === '/root/vfio.json' ? file : w));
    const out = await cli(argv[0] === 'persist' ? [...argv, '--dry-run'] : argv, root);
    assert.equal(out.code, 0, `${argv.join(' ')}: ${out.stderr}`);
    if (argv[0] === 'apply') fs.writeFileSync(file, out.stdout);
  }
});
