import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { createProgram } from '../../src/cli/program.js';
import { ExitCode } from '../../src/exit-codes.js';

// Compiled to dist/test/unit/: the page is three levels up.
const PAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../man/vfioctl.8');
const source = fs.readFileSync(PAGE, 'utf8');

/** Roff source → plain text good enough to search: font escapes dropped, \- → -. */
const plain = (roff: string) => roff.replace(/\\f(?:\[[^\]]*\]|.)/g, '').replace(/\\-/g, '-').replace(/\\e/g, '\\').replace(/\\\(dq/g, '"');

/** Split at a macro (`.SH` or `.SS`): heading text → body, in page order. */
function sections(text: string, macro: '.SH' | '.SS'): Map<string, string> {
  const out = new Map<string, string>();
  const parts = text.split(new RegExp(`^\\${macro} `, 'm'));
  for (const part of parts.slice(1)) {
    const nl = part.indexOf('\n');
    out.set(plain(part.slice(0, nl)).replace(/"/g, '').trim(), part.slice(nl + 1).split(/^\.SH /m)[0]!);
  }
  return out;
}

const top = sections(source, '.SH');
const commandSections = new Map([...sections(top.get('COMMANDS') ?? '', '.SS')].map(([heading, body]) => [heading.split(/\s+/)[0]!, plain(body)]));
const program = createProgram({ stdout: { write: () => true }, stderr: { write: () => true }, env: {}, isTTY: false, runner: async () => ({ exitCode: 0, stdout: '', stderr: '' }) });

const longFlags = (cmd: Command) => cmd.options.map((o) => o.long).filter((l): l is string => l !== undefined);

test('man page has the sections of a section-8 page', () => {
  assert.match(source, /^\.TH VFIOCTL 8 /m);
  for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'OPTIONS', 'SELECTORS', 'SAFETY', 'JSON OUTPUT', 'EXIT STATUS', 'ENVIRONMENT', 'FILES', 'EXAMPLES', 'SEE ALSO']) {
    assert.ok(top.has(s), `man/vfioctl.8: missing section .SH ${s}`);
  }
});

test('man page documents every command and each of its long options', () => {
  const missing: string[] = [];
  const walk = (cmd: Command, trail: string[]) => {
    for (const sub of cmd.commands) {
      const name = [...trail, sub.name()].join(' ');
      const body = trail.length === 0 ? commandSections.get(sub.name()) : commandSections.get(trail[0]!);
      if (body === undefined) {
        missing.push(`command "${name}": add a ".SS ${sub.name()}" section under COMMANDS`);
        continue;
      }
      if (trail.length > 0 && !body.includes(sub.name())) missing.push(`subcommand "${name}": not mentioned in the ${trail[0]} section`);
      for (const flag of longFlags(sub)) {
        if (!new RegExp(`(^|[^\\w-])${flag}(?![\\w-])`).test(body)) missing.push(`option ${flag} of "${name}": not in its COMMANDS section`);
      }
      walk(sub, [...trail, sub.name()]);
    }
  };
  walk(program, []);
  assert.deepEqual(missing, [], `man/vfioctl.8 is behind the CLI:\n  ${missing.join('\n  ')}`);
});

test('man page OPTIONS lists every global option', () => {
  const body = plain(top.get('OPTIONS') ?? '');
  const missing = longFlags(program).filter((f) => !body.includes(f));
  assert.deepEqual(missing, [], `man/vfioctl.8 OPTIONS lacks: ${missing.join(', ')}`);
});

test('man page EXIT STATUS matches src/exit-codes.ts exactly', () => {
  const listed = [...(top.get('EXIT STATUS') ?? '').matchAll(/^\.TP\n\.B (\d+)$/gm)].map((m) => Number(m[1]));
  assert.deepEqual(listed.sort((a, b) => a - b), Object.values(ExitCode).sort((a, b) => a - b));
});

test('man page ENVIRONMENT names the variables vfioctl reads', () => {
  const body = top.get('ENVIRONMENT') ?? '';
  for (const v of ['VFIOCTL_ROOT', 'NO_COLOR', 'FORCE_COLOR', 'VFIOCTL_DEBUG']) assert.match(body, new RegExp(`^\\.B ${v}$`, 'm'), `ENVIRONMENT lacks ${v}`);
});

test('man page EXAMPLES give a --json | jq twin for each text example', () => {
  const body = plain(top.get('EXAMPLES') ?? '');
  const jq = body.split('\n').filter((l) => /--json \| jq /.test(l));
  assert.ok(jq.length >= 4, `only ${jq.length} jq examples`);
});

test('the check itself notices a missing option', () => {
  // Guard against a vacuous pass: a flag that exists nowhere must be reported.
  const body = commandSections.get('groups') ?? '';
  assert.equal(/(^|[^\w-])--no-such-flag(?![\w-])/.test(body), false);
  assert.equal(/(^|[^\w-])--not-viable(?![\w-])/.test(body), true);
});

test('--help lists the exit codes and every environment variable of the man page', async () => {
  const { cli } = await import('../helpers/cli.js');
  const help = (await cli(['--help'])).stdout;
  for (const code of Object.values(ExitCode)) assert.match(help, new RegExp(`\\b${code}\\b`), `exit ${code}`);
  const env = [...(top.get('ENVIRONMENT') ?? '').matchAll(/^\.TP\n\.B (\S+)$/gm)].map((m) => m[1]!);
  assert.ok(env.length >= 6, env.join(' '));
  for (const name of env) assert.ok(help.includes(name), `--help lacks ${name}`);
});
