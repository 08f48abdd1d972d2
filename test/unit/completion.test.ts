import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { tempRoot } from '../helpers/tree.js';
import { bashCompletion, fishCompletion, zshCompletion, type ProgramSpec } from '../../src/cli/render/completion.js';

const has = (shell: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${shell}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Ask bash what it would complete for the words typed so far. */
function bashComplete(script: string, words: string[]): string[] {
  const prog = `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _vfioctl; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['-c', prog], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

test('completion bash: every command and its options come from the commander tree', async () => {
  const r = await cli(['completion', 'bash']);
  assert.equal(r.code, 0, r.stderr);
  const script = r.stdout;
  execFileSync('bash', ['-n'], { input: script });
  assert.deepEqual(bashComplete(script, ['vfioctl', 'gr']), ['groups', 'grant']);
  assert.deepEqual(bashComplete(script, ['vfioctl', 'doctor', '--']), ['--json', '--help']);
  assert.deepEqual(bashComplete(script, ['vfioctl', '--root', '/tmp', 'completion', 'f']), ['fish']);
  assert.ok(bashComplete(script, ['vfioctl', 'grant', '0000:01:00.0', '--r']).includes('--revoke'));
});

test('completion zsh and fish parse, and fish completes subcommands and option values', { skip: !(has('zsh') && has('fish')) && 'zsh or fish not installed' }, async () => {
  const zsh = (await cli(['completion', 'zsh'])).stdout;
  assert.match(zsh, /^#compdef vfioctl/);
  execFileSync('zsh', ['-n'], { input: zsh });
  const fish = (await cli(['completion', 'fish'])).stdout;
  const { root, cleanup } = tempRoot();
  try {
    const file = path.join(root, 'vfioctl.fish');
    fs.writeFileSync(file, fish);
    execFileSync('fish', ['-n', file]);
    const out = execFileSync('fish', ['-c', `source ${file}; complete -C 'vfioctl doc'; complete -C 'vfioctl completion '`], { encoding: 'utf8' });
    assert.match(out, /^doctor\t/m);
    assert.deepEqual(out.split('\n').filter((l) => /^(bash|zsh|fish)$/.test(l)).sort(), ['bash', 'fish', 'zsh']);
  } finally {
    cleanup();
  }
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
