import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BIN, cli } from '../helpers/cli.js';
import { buildTree, tempRoot } from '../helpers/tree.js';
import { labSpec } from '../helpers/lab-tree.js';
import { BASH_COMPLETION, bashComplete, fishComplete, has, zshComplete } from '../helpers/shells.js';
import { bashCompletion, fishCompletion, zshCompletion, type ProgramSpec } from '../../src/cli/render/completion.js';

// A lab-shaped tree (never this machine's /sys), a `vfioctl` on PATH that runs this checkout,
// and the scripts as `vfioctl completion SHELL` prints them.
const { root: work, cleanup } = tempRoot('vfioctl-completion-');
test.after(cleanup);
const ROOT = path.join(work, 'host');
buildTree(ROOT, labSpec());
const OTHER = path.join(work, 'other');
buildTree(OTHER, { devices: [{ bdf: '0000:3b:00.0', id: '8086:1572', class: '020000', driver: 'i40e', group: 40 }], net: { ens1f0: '0000:3b:00.0' } });
const binDir = path.join(work, 'bin');
fs.mkdirSync(binDir);
fs.symlinkSync(BIN, path.join(binDir, 'vfioctl'));
fs.mkdirSync(path.join(work, 'snapdir'));
fs.writeFileSync(path.join(work, 'desired.json'), '{}');
const run = { binDir, cwd: work, env: { VFIOCTL_ROOT: ROOT } };
const script = async (shell: string) => (await cli(['completion', shell])).stdout;
const sorted = (xs: readonly string[]) => [...xs].sort();

const ADDRESSES = ['0000:00:00.0', '0000:00:01.0', '0000:00:02.0', '0000:00:03.0', '0000:00:04.0', '0000:00:05.0'];

test('completion --candidates: addresses in full and short form, interfaces, disks, groups, drivers, from the root', async () => {
  const words = async (kind: string, root = ROOT) => (await cli(['completion', '--candidates', kind], root)).stdout.trim().split('\n');
  const device = await words('device');
  for (const w of ['0000:01:00.0', '01:00.0', '0000:03:02.0', '03:02.0', 'eth0', 'eth2', 'nvme0n1']) assert.ok(device.includes(w), w);
  assert.ok(!device.some((w) => w.startsWith('group:')), 'show takes no group:N');
  assert.ok((await words('selector')).includes('group:4'));
  assert.deepEqual(await words('group'), ['0', '1', '2', '3', '4', '5', '6', '7']);
  const drivers = await words('driver');
  for (const w of ['auto', 'vfio-pci', 'mlx5_vfio_pci', 'vfio_pci_lab', 'e1000e']) assert.ok(drivers.includes(w), w);
  assert.deepEqual(await words('device', OTHER), ['0000:3b:00.0', '3b:00.0', 'ens1f0']);
});

for (const withPackage of [false, true]) {
  const label = withPackage ? 'with the bash-completion package' : 'without bash-completion';
  const skip = withPackage && !fs.existsSync(BASH_COMPLETION) ? `bash-completion not installed (${BASH_COMPLETION}; CI installs it: .ci/run)` : false;
  test(`completion bash (${label}): addresses survive the : word break, every selector position, values from --root`, { skip }, async () => {
    const s = await script('bash');
    execFileSync('bash', ['-n'], { input: s });
    const r = { ...run, bashCompletion: withPackage };
    const c = (line: string, extra: Partial<typeof run> = {}) => bashComplete(s, line, { ...r, ...extra });
    // The bug: Tab Tab after `0000:00:0` must not repeat what is typed.
    const full = c('vfioctl show 0000:00:0');
    assert.equal(full.line, 'vfioctl show 0000:00:0');
    assert.deepEqual(sorted(full.replies.map((x) => '0000:00:' + x)), ADDRESSES);
    assert.equal(c('vfioctl show 0000:01:').line, 'vfioctl show 0000:01:00.0 ');
    assert.equal(c('vfioctl show 01:0').line, 'vfioctl show 01:00.0 ', 'short addresses complete');
    assert.equal(c('vfioctl show nvm').line, 'vfioctl show nvme0n1 ');
    assert.deepEqual(sorted(c('vfioctl show et').replies), ['eth0', 'eth1', 'eth2']);
    assert.equal(c('vfioctl reset-plan 01:00.0 03:0').line, 'vfioctl reset-plan 01:00.0 03:0', 'second selector');
    assert.deepEqual(sorted(c('vfioctl reset-plan 01:00.0 03:0').replies), ['01.0', '02.0']);
    assert.equal(c('vfioctl bind group:').replies.includes('4'), true, 'group:N after the colon');
    assert.deepEqual(c('vfioctl groups --group ').replies, ['0', '1', '2', '3', '4', '5', '6', '7']);
    assert.ok(c('vfioctl bind 01:00.0 --variant ').replies.includes('vfio_pci_lab'));
    assert.ok(c('vfioctl unbind 01:00.0 --to e1').replies.includes('e1000e'));
    assert.deepEqual(c('vfioctl vfs eth0 --bind vfio-').replies, ['vfio-pci']);
    // Candidates follow --root on the line over VFIOCTL_ROOT, in both spellings.
    assert.equal(c(`vfioctl --root ${OTHER} show 3b`).line, `vfioctl --root ${OTHER} show 3b:00.0 `);
    assert.equal(c(`vfioctl --root=${OTHER} show ens`).line, `vfioctl --root=${OTHER} show ens1f0 `);
    assert.deepEqual(c('vfioctl show ens', { env: { VFIOCTL_ROOT: OTHER } }).replies, ['ens1f0']);
    // Files for apply and persist, directories for snapshot and --root.
    assert.deepEqual(c('vfioctl apply des').replies, ['desired.json']);
    assert.deepEqual(c('vfioctl snapshot snap').replies, ['snapdir']);
    assert.deepEqual(c('vfioctl --root sna').replies, ['snapdir']);
    // (readline adds the / of a directory itself: -o filenames)
    assert.equal(c('vfioctl --root=sna').line.trimEnd(), 'vfioctl --root=snapdir', '--root=DIR completes after the =');
    // Subcommands and options.
    assert.deepEqual(c('vfioctl gr').replies, ['groups', 'grant']);
    assert.deepEqual(c('vfioctl doctor --').replies, ['--json', '--help']);
    assert.deepEqual(c('vfioctl --root /tmp completion f').replies, ['fish']);
    assert.ok(c('vfioctl grant 0000:01:00.0 --r').replies.includes('--revoke'));
  });
}

for (const mode of ['fpath', 'source'] as const) {
  test(`completion zsh (${mode === 'fpath' ? 'installed in fpath' : 'source <(vfioctl completion zsh)'}): real completion through zpty`, { skip: !has('zsh') && 'zsh not installed (CI installs it: .ci/run)' }, async () => {
    const s = await script('zsh');
    assert.match(s, /^#compdef vfioctl/);
    execFileSync('zsh', ['-n'], { input: s });
    const lines = [
      'vfioctl gr',
      'vfioctl show 0000:00:0',
      'vfioctl show 01:0',
      'vfioctl reset-plan 01:00.0 03:0',
      'vfioctl groups --group ',
      'vfioctl bind 01:00.0 --variant ',
      `vfioctl --root ${OTHER} show `,
      'vfioctl snapshot snap',
      'vfioctl apply des',
    ] as const;
    const got = zshComplete(s, lines, { ...run, mode, work });
    const c = (line: (typeof lines)[number]) => got[lines.indexOf(line)]!;
    assert.ok(c('vfioctl gr').includes('groups'));
    const sel = c('vfioctl show 0000:00:0');
    assert.deepEqual(sorted(sel.filter((x) => x.startsWith('0000:00:0'))), ADDRESSES);
    assert.ok(c('vfioctl show 01:0').includes('01:00.0'), 'short addresses');
    const second = c('vfioctl reset-plan 01:00.0 03:0');
    assert.ok(second.includes('03:01.0') && second.includes('03:02.0'), `second selector: ${second}`);
    assert.ok(c('vfioctl groups --group ').includes('7'));
    assert.ok(c('vfioctl bind 01:00.0 --variant ').includes('vfio_pci_lab'));
    assert.ok(c(`vfioctl --root ${OTHER} show `).includes('ens1f0'), 'candidates from --root');
    assert.ok(c('vfioctl snapshot snap').includes('snapdir'));
    assert.ok(c('vfioctl apply des').includes('desired.json'), 'files for apply');
  });
}

test('completion fish: subcommands, options, selectors at every position, values from --root', { skip: !has('fish') && 'fish not installed (CI installs it: .ci/run)' }, async () => {
  const s = await script('fish');
  const c = (line: string, env: Record<string, string> = run.env) => fishComplete(s, line, { ...run, env, work });
  assert.ok(c('vfioctl doc').includes('doctor'));
  assert.deepEqual(sorted(c('vfioctl completion ')), ['bash', 'fish', 'zsh']);
  assert.deepEqual(sorted(c('vfioctl show 0000:00:0')), ADDRESSES);
  assert.deepEqual(c('vfioctl show 01:0'), ['01:00.0']);
  assert.deepEqual(sorted(c('vfioctl reset-plan 01:00.0 03:0')), ['03:01.0', '03:02.0']);
  assert.deepEqual(c('vfioctl groups --group '), ['0', '1', '2', '3', '4', '5', '6', '7']);
  assert.ok(c('vfioctl bind 01:00.0 --variant ').includes('vfio_pci_lab'));
  assert.deepEqual(c(`vfioctl --root ${OTHER} show e`), ['ens1f0']);
  assert.deepEqual(c('vfioctl show e', { VFIOCTL_ROOT: OTHER }), ['ens1f0']);
  assert.ok(c('vfioctl apply des').includes('desired.json'));
  assert.ok(c('vfioctl snapshot snap').some((x) => x.startsWith('snapdir')));
});

test('completion: hostile descriptions and names stay inert in all three shells', { skip: !(has('zsh') && has('fish')) && 'zsh or fish not installed' }, () => {
  const evil = `it's [a] "test" $(touch PWNED) \`touch PWNED\` ; \\ end:colon\nnewline`;
  const spec: ProgramSpec = {
    name: 'vfioctl',
    globals: [{ long: '--root', short: null, description: evil, value: 'dir' }],
    commands: [
      { name: 'ok', description: evil, options: [{ long: '--mode', short: '-m', description: evil, value: { choices: ['a', 'b;rm', '$(x)'] } }], args: ['selector'] },
      { name: 'bad;touch PWNED', description: 'dropped', options: [], args: [] },
    ],
  };
  const { root, cleanup } = tempRoot();
  try {
    for (const [shell, text] of [['bash', bashCompletion(spec)], ['zsh', zshCompletion(spec)], ['fish', fishCompletion(spec)]] as const) {
      assert.doesNotMatch(text, /bad;touch/, `${shell}: unsafe command name dropped`);
      assert.doesNotMatch(text, /b;rm|\$\(x\)/, `${shell}: unsafe choices dropped`);
      const file = path.join(root, `c.${shell}`);
      fs.writeFileSync(file, text);
      execFileSync(shell, ['-n', file]);
      // Loading the script (and, for fish, listing completions with descriptions) must not run anything.
      const run = shell === 'fish' ? `source ${file}; complete -C 'vfioctl o'` : `source ${file} 2>/dev/null || true`;
      execFileSync(shell, ['-c', run], { cwd: root, encoding: 'utf8' });
      assert.equal(fs.existsSync(path.join(root, 'PWNED')), false, shell);
    }
    const fishOut = execFileSync('fish', ['-c', `source ${path.join(root, 'c.fish')}; complete -C 'vfioctl o'`], { encoding: 'utf8' });
    assert.match(fishOut, /it's \[a\] "test" \$\(touch PWNED\)/, 'the description arrives literally');
  } finally {
    cleanup();
  }
});

test('completion rejects an unknown shell as a usage error', async () => {
  const r = await cli(['completion', 'powershell']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /powershell/);
});
