import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '../helpers/cli.js';
import { tempRoot } from '../helpers/tree.js';

const README = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');

test('README: the first lines are two commands, set-up with the main job and the tests', () => {
  const first = /^# vfioctl\n\n```sh\n([^`]*)```/.exec(README);
  assert.ok(first, 'a sh block right under the title');
  const lines = first[1]!.trim().split('\n').map((l) => l.replace(/\s+#.*$/, ''));
  assert.deepEqual(lines, ['npm install && ./bin/vfioctl groups', 'npm test']);
});

test('README: every Usage line runs as typed in the checkout (through bash, on the sample tree)', (t) => {
  const usage = README.slice(README.indexOf('## Usage'));
  const block = /```sh\n([\s\S]*?)\n```/.exec(usage)![1]!;
  const lines = block.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  assert.ok(lines.length >= 15, `${lines.length} lines`);
  const { root: tmp, cleanup } = tempRoot('vfioctl-readme-');
  t.after(cleanup);
  // One bash runs the block line by line, as a reader pastes it; each line's status is reported.
  // (An export line stays outside the subshell, as it does for the reader.)
  const script = lines.map((l, i) => (/^export /.test(l) ? l : `(\n${l}\n) >/dev/null 2>"$TMPDIR/err.${i}"; echo "line ${i} exit $?"`)).join('\n');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', TMPDIR: tmp, HOME: tmp };
  const before = listing(path.join(REPO, 'examples'));
  const r = spawnSync('bash', ['-c', script], { cwd: REPO, encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  const results = [...r.stdout.matchAll(/^line (\d+) exit (\d+)$/gm)];
  assert.equal(results.length, lines.filter((l) => !/^export /.test(l)).length, r.stdout);
  for (const [, i, code] of results) {
    const err = fs.existsSync(path.join(tmp, `err.${i}`)) ? fs.readFileSync(path.join(tmp, `err.${i}`), 'utf8') : '';
    assert.equal(code, '0', `README line "${lines[Number(i)]}" exits ${code}: ${err}`);
  }
  // Nothing was written into the sample tree.
  assert.deepEqual(listing(path.join(REPO, 'examples')), before, 'the README leaves examples/ as it is');
});

/** Every entry under dir with its size and modification time. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      out.push(`${p} ${st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

test('README: every repository path it names exists', () => {
  const paths = new Set([...README.matchAll(/(?<![\w/.-])((?:examples|schema|test|man|src|scripts|bin|contrib|\.ci)\/[\w./*-]*\w)/g)].map((m) => m[1]!));
  assert.ok(paths.size >= 10, [...paths].join(' '));
  for (const p of paths) {
    if (p.includes('*')) continue;
    assert.ok(fs.existsSync(path.join(REPO, p)), `README names ${p}, which does not exist`);
  }
});
