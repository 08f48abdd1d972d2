import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Whether a program is on PATH. */
export function has(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
}

/** Where Debian's bash-completion package keeps its main script. */
export const BASH_COMPLETION = '/usr/share/bash-completion/bash_completion';

export interface ShellRun {
  /** Directory put first on PATH (holds a `vfioctl` that runs this checkout). */
  binDir: string;
  env?: Record<string, string>;
  cwd?: string;
}

const envFor = (r: ShellRun) => ({ PATH: `${r.binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: r.cwd ?? '/tmp', ...r.env });

/**
 * bash's programmable completion protocol, as readline drives it: COMP_LINE, COMP_POINT,
 * COMP_WORDS split at COMP_WORDBREAKS (so `0000:00:0` is `0000 : 00 : 0`), COMP_CWORD; then
 * `_vfioctl`, and the line as readline leaves it: the text after the last word break replaced
 * by the one reply, or by the replies' longest common prefix.
 */
export function bashComplete(script: string, line: string, r: ShellRun & { bashCompletion?: boolean }): { replies: string[]; line: string } {
  const words = bashWords(line);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const prog = [
    r.bashCompletion ? `source ${BASH_COMPLETION}` : '',
    script,
    `COMP_LINE=${q(line)}; COMP_POINT=${line.length}; COMP_WORDS=(${words.map(q).join(' ')}); COMP_CWORD=${words.length - 1}; COMP_TYPE=9; COMP_KEY=9`,
    '_vfioctl',
    `printf '%s\\n' "\${COMPREPLY[@]}"`,
  ].join('\n');
  const replies = execFileSync('bash', ['-c', prog], { encoding: 'utf8', env: envFor(r), cwd: r.cwd }).split('\n').filter(Boolean);
  const start = line.search(/[^\s:=]*$/);
  const insert = replies.length === 1 ? replies[0]! + (/[/:=]$/.test(replies[0]!) ? '' : ' ') : commonPrefix(replies);
  return { replies, line: line.slice(0, start) + (replies.length ? insert : line.slice(start)) };
}

function commonPrefix(xs: readonly string[]): string {
  if (xs.length === 0) return '';
  let p = xs[0]!;
  for (const x of xs) while (!x.startsWith(p)) p = p.slice(0, -1);
  return p;
}

/** COMP_WORDS for a line with bash's default COMP_WORDBREAKS (": = and blanks, among others). */
function bashWords(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/[:=]+|[^\s:=]+/g)) out.push(m[0]);
  if (line === '' || /[\s]$/.test(line)) out.push('');
  return out;
}

/**
 * zsh's real completion system, through zsh/zpty: one interactive `zsh -f` with compinit, the
 * script installed in an fpath directory or sourced, compadd wrapped to write every match to
 * a file; then each line typed with a Tab (and cleared with ^U). The matches of each line.
 */
export function zshComplete(script: string, lines: readonly string[], r: ShellRun & { mode: 'fpath' | 'source'; work: string }): string[][] {
  const out = path.join(r.work, `zsh-${process.pid}-${Math.random().toString(36).slice(2)}.out`);
  const fdir = path.join(r.work, 'zfunc');
  fs.mkdirSync(fdir, { recursive: true });
  fs.writeFileSync(path.join(fdir, '_vfioctl'), script);
  const file = path.join(r.work, 'vfioctl.zsh');
  fs.writeFileSync(file, script);
  const DONE = '--vfioctl-test-done--';
  const setup = [
    r.mode === 'fpath' ? `fpath=(${fdir} $fpath)` : '',
    'autoload -U compinit; compinit -u -D',
    r.mode === 'source' ? `source <(cat ${file})` : '',
    // Every match that reaches compadd is written to the file; -O/-A/-D calls are queries.
    `compadd() { if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return; fi; local -a __hits; builtin compadd -A __hits "$@"; (( $#__hits )) && print -rl -- $__hits >> ${out}; builtin compadd "$@"; }`,
    // comppostfuncs is emptied after each completion: Tab sets it anew, then completes.
    `_vfioctl_test_done() { print -r -- ${DONE} >> ${out}; }`,
    '_vfioctl_test_tab() { comppostfuncs=( _vfioctl_test_done ); zle complete-word; }',
    "zle -N _vfioctl_test_tab; bindkey '^I' _vfioctl_test_tab",
    "zstyle ':completion:*' insert-tab false",
  ].filter(Boolean);
  const driver = [
    'zmodload zsh/zpty',
    'zpty z zsh -f -i',
    ...setup.map((c) => `zpty -w z ${zshQuote(c)}`),
    ...lines.flatMap((line, i) => [
      `zpty -w -n z ${zshQuote(line + '\t')}`,
      `for t in {1..300}; do [[ -e ${out} && $(grep -c -- ${DONE} ${out}) -ge ${i + 1} ]] && break; sleep 0.05; done`,
      "zpty -w -n z $'\\x15'",
    ]),
    'zpty -d z',
  ].join('\n');
  execFileSync('zsh', ['-f', '-c', driver], { encoding: 'utf8', env: { ...envFor(r), TERM: 'dumb' }, cwd: r.cwd, timeout: 60_000 });
  const text = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
  const parts = text.split(`${DONE}\n`);
  if (parts.length < lines.length + 1) throw new Error(`zsh completed ${parts.length - 1} of ${lines.length} lines`);
  return lines.map((_, i) => parts[i]!.split('\n').filter(Boolean));
}

const zshQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** fish's own answer: `complete -C LINE` with the script loaded. */
export function fishComplete(script: string, line: string, r: ShellRun & { work: string }): string[] {
  const file = path.join(r.work, 'vfioctl.fish');
  fs.writeFileSync(file, script);
  const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return execFileSync('fish', ['--no-config', '-c', `source ${q(file)}; complete -C ${q(line)}`], { encoding: 'utf8', env: envFor(r), cwd: r.cwd })
    .split('\n').filter(Boolean).map((l) => l.split('\t')[0]!);
}
