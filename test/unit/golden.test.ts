import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli, REPO } from '../helpers/cli.js';

/**
 * Golden files: the human and JSON output of groups, show, variants, bind --dry-run,
 * reset-plan and doctor on every lab-captured tree (test/fixtures/lab-*), kept in
 * test/golden/LAB/TREE/. A change in output is a reviewed diff: regenerate with
 *
 *     UPDATE_GOLDEN=1 npm test
 *
 * and commit the changed files with the change that made them. The checkout's path is
 * written as <repo>; a non-zero exit status and standard error are appended to the text.
 */
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const FIXTURES = path.join(REPO, 'test/fixtures');
const GOLDEN = path.join(REPO, 'test/golden');
const LABS = fs.readdirSync(FIXTURES).filter((d) => d.startsWith('lab-')).sort();

const normalise = (s: string) => s.split(REPO).join('<repo>');

function record(code: number, stdout: string, stderr: string): string {
  let out = normalise(stdout);
  if (code !== 0 || stderr !== '') out += `--- exit ${code}${stderr ? `, stderr:\n${normalise(stderr)}` : '\n'}`;
  return out;
}

/** The lab's devices handed to vfio-pci in its vfio/ capture: what a VM would get. */
async function vfioDevices(lab: string): Promise<string[]> {
  const doc = (await cli(['groups', '--vfio', '--json'], path.join(FIXTURES, lab, 'vfio'))).json();
  return doc.groups.flatMap((g: { devices: { bdf: string; vfioBound: boolean }[] }) => g.devices.filter((d) => d.vfioBound).map((d) => d.bdf));
}

function check(file: string, actual: string, stale: string[]): void {
  if (UPDATE) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, actual);
    return;
  }
  if (!fs.existsSync(file)) {
    stale.push(`${path.relative(REPO, file)}: missing`);
    return;
  }
  const want = fs.readFileSync(file, 'utf8');
  if (want !== actual) stale.push(`${path.relative(REPO, file)} differs:\n${firstDifference(want, actual)}`);
}

function firstDifference(want: string, got: string): string {
  const a = want.split('\n');
  const b = got.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `  line ${i + 1}\n  - ${a[i] ?? '(end)'}\n  + ${b[i] ?? '(end)'}`;
  }
  return '';
}

for (const lab of LABS) {
  test(`golden: ${lab}`, async () => {
    const devices = await vfioDevices(lab);
    assert.ok(devices.length > 0, `${lab}: no vfio-bound device in vfio/`);
    const first = devices[0]!;
    const set = devices.slice(0, 3);
    const stale: string[] = [];
    for (const tree of ['host', 'vfio']) {
      const root = path.join(FIXTURES, lab, tree);
      const runs: [string, string[], { isTTY?: boolean; env?: Record<string, string> }?][] = [
        ['groups', ['groups']],
        ['groups.tty80', ['groups'], { isTTY: true, env: { NO_COLOR: '1', COLUMNS: '80' } }],
        ['show', ['show', first]],
        ['variants', ['variants', first]],
        ['bind-dry-run', ['bind', first, '--dry-run']],
        ['reset-plan', ['reset-plan', ...set]],
        ['doctor', ['doctor']],
      ];
      for (const [name, args, opts] of runs) {
        const human = await cli(args, root, opts);
        check(path.join(GOLDEN, lab, tree, `${name}.txt`), record(human.code, human.stdout, human.stderr), stale);
        if (name.includes('.')) continue;
        const json = await cli([...args, '--json'], root);
        check(path.join(GOLDEN, lab, tree, `${name}.json`), normalise(json.stdout), stale);
        assert.equal(json.code, human.code, `${lab}/${tree} ${args.join(' ')}: the same exit with --json`);
      }
    }
    assert.deepEqual(stale, [], `output changed; review, then regenerate with UPDATE_GOLDEN=1 npm test:\n${stale.join('\n')}`);
  });
}
