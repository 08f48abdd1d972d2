import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { buildTree, tempRoot, type DevSpec } from '../helpers/tree.js';
import { labSpec } from '../helpers/lab-tree.js';
import { BIN } from '../helpers/cli.js';
import type { WorkerReply, WorkerRequest } from '../helpers/bad-input-worker.js';
import { ExitCode } from '../../src/exit-codes.js';
import { INPUT_MAX_BYTES } from '../../src/provision/read-input.js';
import { isDriverName } from '../../src/model/names.js';
import { MAX_DEPTH } from '../../src/provision/json-pos.js';

/**
 * The project's own bad-input suite: several hundred generated cases (selectors, driver and
 * module names, options, desired-state files and standard input, --root values, trees with
 * garbage, huge, FIFO, dangling and escaping entries), each run in-process through
 * helpers/cli.ts (in a worker thread, so a hang fails the case after CASE_TIMEOUT_MS instead
 * of blocking the suite). Every case asserts:
 *   - the exit code is a documented one and never 70 (internal), and within the case's set;
 *   - standard error holds no stack trace and no more than a short quote of the input;
 *   - nothing outside the root changed (a sentinel directory, with mode and owner, compared
 *     before and after), and nothing the tree's escaping links point at was printed;
 *   - for bad input: nothing inside the root changed either.
 * Cases on the mutating commands the lead is rewriting (bind, unbind, apply, vfs, grant,
 * persist) hold them to that contract, not to their messages.
 */

const CASE_TIMEOUT_MS = 10_000;
const DOCUMENTED = new Set<number>(Object.values(ExitCode));
const ENV = { NO_COLOR: '1', VFIOCTL_LOCK_TIMEOUT: '0' };
/** A stack frame as V8 prints it. */
const STACK = /\n\s+at .+(?::\d+:\d+\)?|\(native\))/;
/** What the sentinel files outside the root say; none of it may show up in vfioctl's output. */
const SECRETS = ['feed:face', 'evil_vfio_pci', 'evil-vfio-pci', 'mallory', 'SENTINEL'];

// --- the trees ---

const PF: DevSpec = { bdf: '0000:00:06.0', id: '8086:1521', class: '020000', driver: 'igb', group: 8, sriov: { total: 4, num: 0 } };
const SPEC = labSpec({ devices: [...labSpec().devices, PF], drivers: { ...labSpec().drivers, igb: 'igb' } });

// Some hundred tree copies: on tmpfs when there is one (a disk-backed /tmp makes copying
// and removing them most of the suite's time).
const SCRATCH = fs.existsSync('/dev/shm') && fs.statSync('/dev/shm').isDirectory() ? '/dev/shm' : undefined;
const base = SCRATCH ? { root: fs.mkdtempSync(path.join(SCRATCH, 'vfioctl-bad-input-')) } : tempRoot('vfioctl-bad-input-');
after(() => fs.rmSync(base.root, { recursive: true, force: true }));
const TEMPLATE = path.join(base.root, 'template');
const OUTSIDE = path.join(base.root, 'outside');
const FILES = path.join(base.root, 'files');
fs.mkdirSync(FILES, { recursive: true });

function put(file: string, text: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  fs.chmodSync(file, mode);
}

buildTree(TEMPLATE, SPEC);
put(path.join(TEMPLATE, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n');
put(path.join(TEMPLATE, 'etc/group'), 'root:x:0:\nkvm:x:36:alice\n');
put(path.join(TEMPLATE, 'dev/vfio/7'), '', 0o600);
// The lock's directory exists, so a refused run leaves the tree exactly as it was.
fs.mkdirSync(path.join(TEMPLATE, 'run/lock'), { recursive: true });

// Outside the root: what escaping links point at. A device directory whose ids would show
// in any output that read it, a modules.alias naming an "evil" variant, a passwd, a file and
// a directory whose owner, mode and contents must never change.
const OUT_DEV = path.join(OUTSIDE, 'device');
for (const [f, v] of Object.entries({ vendor: '0xfeed', device: '0xface', class: '0x020000', modalias: 'pci:v0000FEEDd0000FACEsv0000FEEDsd00000000bc02sc00i00', driver_override: 'SENTINEL', numa_node: '0', reset_method: 'SENTINEL', sriov_totalvfs: '7', sriov_numvfs: '0' })) put(path.join(OUT_DEV, f), `${v}\n`);
put(path.join(OUTSIDE, 'modules.alias'), 'alias vfio_pci:v0000FEEDd*sv*sd*bc*sc*i* evil_vfio_pci\nalias vfio_pci:v00008086d*sv*sd*bc*sc*i* evil_vfio_pci\n');
put(path.join(OUTSIDE, '6.1.0-test/modules.alias'), 'alias vfio_pci:v00008086d*sv*sd*bc*sc*i* evil_vfio_pci\n');
put(path.join(OUTSIDE, 'passwd'), 'mallory:x:0:0::/:/bin/sh\n');
put(path.join(OUTSIDE, 'file'), 'SENTINEL\n', 0o640);
fs.mkdirSync(path.join(OUTSIDE, 'dir/rules.d'), { recursive: true });
fs.mkdirSync(path.join(OUTSIDE, 'module/drivers'), { recursive: true });

// --- snapshots ---

/**
 * Every entry under `dir` (links not followed): kind, mode, owner, size, change and
 * modification times (any write, rename, chmod or chown moves ctime), link target.
 */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    const abs = path.join(dir, rel);
    const st = fs.lstatSync(abs);
    const head = `${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out.set(rel, `${head} -> ${fs.readlinkSync(abs)}`);
    else if (st.isDirectory()) {
      out.set(rel, head);
      for (const e of fs.readdirSync(abs).sort()) walk(rel ? `${rel}/${e}` : e);
    } else if (st.isFile()) {
      out.set(rel, `${head} ${st.size} ${st.mtimeMs} ${st.ctimeMs} ${st.ino}`);
    } else out.set(rel, `${head} ${st.mtimeMs} ${st.ctimeMs}`);
  };
  walk('');
  return out;
}

function diff(before: Map<string, string>, afterSnap: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of before) if (afterSnap.get(k) !== v) out.push(afterSnap.has(k) ? `changed ${k}` : `removed ${k}`);
  for (const k of afterSnap.keys()) if (!before.has(k)) out.push(`added ${k}`);
  return out;
}

// --- the runner: one worker thread, replaced when a case hangs ---

class CaseRunner {
  private worker: Worker | undefined;
  private next = 0;
  private readonly waiting = new Map<number, (r: WorkerReply) => void>();

  private start(): Worker {
    const w = new Worker(new URL('../helpers/bad-input-worker.js', import.meta.url));
    w.unref();
    w.on('message', (r: WorkerReply) => {
      this.waiting.get(r.id)?.(r);
      this.waiting.delete(r.id);
    });
    w.on('error', (err) => {
      for (const [id, done] of this.waiting) done({ id, thrown: `worker died: ${String(err)}` });
      this.waiting.clear();
      if (this.worker === w) this.worker = undefined;
    });
    return w;
  }

  run(req: Omit<WorkerRequest, 'id'>): Promise<WorkerReply> {
    const w = (this.worker ??= this.start());
    const id = this.next++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        // A blocked thread cannot be stopped from here; it is abandoned (unref'd) and replaced.
        void w.terminate();
        if (this.worker === w) this.worker = undefined;
        resolve({ id, thrown: `no answer within ${CASE_TIMEOUT_MS} ms (hang)` });
      }, CASE_TIMEOUT_MS);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      w.postMessage({ id, ...req } satisfies WorkerRequest);
    });
  }

  stop(): void {
    void this.worker?.terminate();
  }
}

const runner = new CaseRunner();
after(() => runner.stop());

// --- cases ---

interface Paths {
  root: string;
  outside: string;
  files: string;
}

interface Case {
  name: string;
  /** argv after `--root ROOT` (or the whole argv when `noRoot`). */
  argv: (p: Paths) => string[];
  /** Change the case's own copy of the tree first. */
  setup?: (p: Paths) => void;
  stdin?: WorkerRequest['stdin'];
  env?: Record<string, string>;
  noRoot?: boolean;
  /** Exit codes the case may end with. */
  codes: readonly number[];
  /** Bad input: nothing inside the root may change either. */
  unchanged: boolean;
}

let copies = 0;
/** A copy of the template tree, links copied as links (fs.cpSync takes ~0.3 s for this tree). */
function freshCopy(): string {
  const dir = path.join(base.root, `case-${copies++}`);
  const copy = (from: string, to: string) => {
    fs.mkdirSync(to);
    for (const e of fs.readdirSync(from, { withFileTypes: true })) {
      const [a, b] = [path.join(from, e.name), path.join(to, e.name)];
      if (e.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(a), b);
      else if (e.isDirectory()) copy(a, b);
      else fs.writeFileSync(b, fs.readFileSync(a), { mode: fs.statSync(a).mode & 0o7777 });
    }
  };
  copy(TEMPLATE, dir);
  return dir;
}

/**
 * The tree a case runs on: consecutive cases with the same setup share one copy (made
 * afresh whenever a case changed it), as do all cases without one.
 */
let current: { setup: Case['setup']; root: string; snap: Map<string, string> } | undefined;
function treeFor(c: Case): { root: string; snap: Map<string, string> } {
  if (current && current.setup === c.setup) return current;
  if (current) fs.rmSync(current.root, { recursive: true, force: true });
  const root = freshCopy();
  c.setup?.({ root, outside: OUTSIDE, files: FILES });
  current = { setup: c.setup, root, snap: snapshot(root) };
  return current;
}

const timings: [number, string][] = [];
after(() => {
  if (process.env.BAD_INPUT_TIMES) console.log(timings.sort((a, b) => b[0] - a[0]).slice(0, 15));
});

/** Run cases; returns the failures, one line each. */
async function runCases(cases: readonly Case[]): Promise<string[]> {
  const failures: string[] = [];
  for (const c of cases) {
    const { root, snap: rootBefore } = treeFor(c);
    const argv = c.argv({ root, outside: OUTSIDE, files: FILES });
    const outsideBefore = snapshot(OUTSIDE);
    const filesBefore = snapshot(FILES);
    const t0 = Date.now();
    const r = await runner.run({ argv, ...(c.noRoot ? {} : { root }), env: { ...ENV, ...c.env }, ...(c.stdin ? { stdin: c.stdin } : {}) });
    if (process.env.BAD_INPUT_TIMES) timings.push([Date.now() - t0, c.name]);
    const problems: string[] = [];
    if (r.thrown !== undefined) problems.push(`threw: ${r.thrown.split('\n')[0]}`);
    else {
      if (r.code === ExitCode.INTERNAL) problems.push('exit 70 (internal error)');
      else if (!DOCUMENTED.has(r.code!)) problems.push(`undocumented exit ${r.code}`);
      else if (!c.codes.includes(r.code!)) problems.push(`exit ${r.code}, expected one of ${c.codes.join('/')}`);
      if (STACK.test(r.stderr!)) problems.push('stack trace on stderr');
      if (r.stderr!.length > 2000) problems.push(`stderr of ${r.stderr!.length} characters (input echoed?)`);
      const seen = SECRETS.filter((s) => r.stdout!.includes(s) || r.stderr!.includes(s));
      if (seen.length) problems.push(`printed what lies outside the root: ${seen.join(', ')}`);
    }
    const outsideDiff = diff(outsideBefore, snapshot(OUTSIDE));
    if (outsideDiff.length) problems.push(`changed outside the root: ${outsideDiff.slice(0, 5).join(', ')}`);
    const filesDiff = diff(filesBefore, snapshot(FILES));
    if (filesDiff.length) problems.push(`changed the input files: ${filesDiff.slice(0, 5).join(', ')}`);
    // vfioctl's own bookkeeping (the state directory, its flock file and holder note) is not a
    // change to the system; a record or journal under it is.
    const rootDiff = diff(rootBefore, snapshot(root)).filter((d) => !/^(changed|added) (run|run\/vfioctl|run\/vfioctl\/lock|run\/vfioctl\/lock\.holder)$/.test(d));
    if (c.unchanged && rootDiff.length) problems.push(`changed inside the root: ${rootDiff.slice(0, 5).join(', ')}`);
    if (problems.length) failures.push(`${c.name}: ${problems.join('; ')}${r.stderr ? ` [stderr: ${JSON.stringify(r.stderr.slice(0, 300))}]` : ''}`);
    if (rootDiff.length) {
      fs.rmSync(root, { recursive: true, force: true });
      current = undefined;
    }
  }
  return failures;
}

const show = (s: string) => JSON.stringify(s.length > 30 ? `${s.slice(0, 30)}…(${s.length})` : s);
let total = 0;
async function check(cases: readonly Case[], atLeast: number): Promise<void> {
  assert.ok(cases.length >= atLeast, `generated ${cases.length} cases, expected at least ${atLeast}`);
  total += cases.length;
  const failures = await runCases(cases);
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases failed:\n${failures.join('\n')}`);
}

// --- generated inputs ---

/** Values that are no device: paths, blanks, control characters, huge, unicode, option-like. */
const BAD_SELECTORS = [
  '', ' ', '.', '..', '../../../../etc/passwd', '/etc/passwd', 'eth0/../../..', 'a/b', 'x'.repeat(65), 'x'.repeat(100_000),
  '\u0000', 'eth0\u0000', 'eth0\nx', 'eth0 eth1', '\t', '0000:1:00.0', '1:0.0', 'zz:zz.z', '0000:00:00.8', '0000:00:20.0',
  'group:', 'group:-1', 'group:99999999999999999999', 'group:1e3', '10de:', ':', '@', 'eth0;reboot', '$(id)', '`id`',
  '\u202e', '💥', 'é', '\u001b[31m', '-', '--', '-x', '--root=/', 'ffff:ffff', 'eth9', 'nvme9n1', 'lo',
];
/** Values that are no driver or module name. */
const BAD_NAMES = ['', ' ', '.', '..', '../../../../tmp/x', '/etc', 'a/b', 'vfio-pci\n', 'vfio pci', '\u0000', 'vfio-pci\u0000', 'x'.repeat(65), 'x'.repeat(10_000), '$(reboot)', 'vfio-pci;id', 'é', '..\\..', '\u202e', 'a\tb', '../vfio-pci'];
/** Names that are names, but of nothing here. */
const UNKNOWN_NAMES = ['no-such-driver', 'nvidia', 'x'.repeat(64)];

const DEV = '0000:01:00.0'; // e1000e
const VFIO_DEV = '0000:00:05.0'; // on vfio-pci, group 7
const MUTATING_CODES = [1, 2, 3, 4, 5];

test('bad selectors: usage error or no such device, on every command that takes one; nothing changes', async () => {
  const commands: [string, (sel: string) => string[]][] = [
    ['show', (s) => ['show', s]],
    ['show --json', (s) => ['show', '--json', s]],
    ['groups --device', (s) => ['groups', '--device', s]],
    ['reset-plan', (s) => ['reset-plan', s]],
    ['variants', (s) => ['variants', s]],
    ['bind --dry-run', (s) => ['bind', '--dry-run', s]],
    ['bind', (s) => ['bind', s]],
    ['unbind --dry-run', (s) => ['unbind', '--dry-run', s]],
    ['grant --dry-run', (s) => ['grant', '--dry-run', '--user', 'alice', s]],
    ['vfs --dry-run', (s) => ['vfs', '--dry-run', '--count', '1', s]],
  ];
  const cases: Case[] = [];
  for (const [cmd, argv] of commands) {
    for (const sel of BAD_SELECTORS) {
      cases.push({ name: `${cmd} ${show(sel)}`, argv: () => argv(sel), codes: [ExitCode.USAGE, ExitCode.NOT_FOUND], unchanged: true });
    }
  }
  await check(cases, 400);
});

test('driver and module names: a bad one is a usage error, an unknown one "no such driver"; never a path; nothing changes', async () => {
  const cases: Case[] = [];
  for (const name of BAD_NAMES) {
    // The grammar is enforced where names enter (resolveDriverName): exit 2 whatever the
    // command. Options are trimmed first (`--to ' vfio-pci\n'` is vfio-pci), files are not.
    for (const dry of isDriverName(name.trim()) ? [] : [true, false]) {
      const d = dry ? ['--dry-run'] : [];
      cases.push({ name: `bind --variant ${show(name)}${dry ? ' --dry-run' : ''}`, argv: () => ['bind', DEV, '--variant', name, ...d], codes: [ExitCode.USAGE], unchanged: true });
      cases.push({ name: `unbind --to ${show(name)}${dry ? ' --dry-run' : ''}`, argv: () => ['unbind', VFIO_DEV, '--to', name, ...d], codes: [ExitCode.USAGE], unchanged: true });
      // vfs writes sriov_numvfs before it binds and its --dry-run never resolves --bind: until
      // it checks --bind first (checkDriverOption, the lead's change) it is held to the
      // mutating contract only (documented exit, nothing written outside the root).
      cases.push({ name: `vfs --bind ${show(name)}${dry ? ' --dry-run' : ''}`, argv: () => ['vfs', PF.bdf, '--count', '2', '--bind', name, ...d], codes: dry ? [0, ExitCode.USAGE, ExitCode.REFUSED] : MUTATING_CODES, unchanged: dry });
    }
    const file = (p: Paths) => {
      const f = path.join(p.files, `driver-${createHash('sha1').update(name).digest('hex')}.json`);
      if (!fs.existsSync(f)) put(f, JSON.stringify({ schemaVersion: 1, devices: [{ match: DEV, driver: name }] }));
      return f;
    };
    cases.push({ name: `apply file driver ${show(name)}`, argv: (p) => ['apply', file(p)], codes: [ExitCode.USAGE], unchanged: true });
    cases.push({ name: `apply --dry-run file driver ${show(name)}`, argv: (p) => ['apply', '--dry-run', file(p)], codes: [ExitCode.USAGE], unchanged: true });
    cases.push({ name: `persist file driver ${show(name)}`, argv: (p) => ['persist', file(p)], codes: [ExitCode.USAGE], unchanged: true });
    cases.push({ name: `apply - driver ${show(name)}`, argv: () => ['apply', '-'], stdin: { text: JSON.stringify({ schemaVersion: 1, devices: [{ match: DEV, driver: name }] }) }, codes: [ExitCode.USAGE], unchanged: true });
    // A state record naming such a driver: unbind must not write it into a path.
    cases.push({
      name: `unbind with a state record naming driver ${show(name)}`,
      setup: (p) => put(path.join(p.root, 'run/vfioctl/devices', `${VFIO_DEV}.json`), JSON.stringify({ schemaVersion: 1, bdf: VFIO_DEV, driver: name, module: name, override: null, boundTo: 'vfio-pci', at: '' })),
      argv: () => ['unbind', VFIO_DEV], codes: MUTATING_CODES, unchanged: false,
    });
  }
  for (const name of UNKNOWN_NAMES) {
    cases.push({ name: `bind --variant ${show(name)} (unknown)`, argv: () => ['bind', DEV, '--variant', name, '--dry-run'], codes: [ExitCode.NOT_FOUND], unchanged: true });
    cases.push({ name: `unbind --to ${show(name)} (unknown)`, argv: () => ['unbind', VFIO_DEV, '--to', name, '--dry-run'], codes: [ExitCode.NOT_FOUND], unchanged: true });
    cases.push({ name: `apply driver ${show(name)} (unknown)`, argv: () => ['apply', '--dry-run', '-'], stdin: { text: JSON.stringify({ schemaVersion: 1, devices: [{ match: DEV, driver: name }] }) }, codes: [ExitCode.NOT_FOUND], unchanged: true });
  }
  await check(cases, 150);
});

test('options: counts, users, groups and unknown flags are usage errors or "no such", never a crash; nothing changes', async () => {
  const cases: Case[] = [];
  for (const count of ['', ' ', '-1', 'x', '1e9', '0x10', '99999999999999999999', '2000000000', '5', '1.5', 'Infinity', 'NaN', '\u0000']) {
    for (const dry of [true, false]) {
      cases.push({ name: `vfs --count ${show(count)}${dry ? ' --dry-run' : ''}`, argv: () => ['vfs', PF.bdf, '--count', count, ...(dry ? ['--dry-run'] : [])], codes: [ExitCode.USAGE, ExitCode.REFUSED], unchanged: true });
    }
  }
  for (const user of ['', ' ', '../../etc/passwd', 'x'.repeat(100_000), '\u0000', 'nobody-such', '-1', '99999999999', 'eve', 'root:root']) {
    cases.push({ name: `grant --user ${show(user)}`, argv: () => ['grant', VFIO_DEV, '--user', user], codes: [ExitCode.USAGE, ExitCode.NOT_FOUND], unchanged: true });
    cases.push({ name: `grant --group ${show(user)}`, argv: () => ['grant', VFIO_DEV, '--user', 'alice', '--group', user], codes: [ExitCode.USAGE, ExitCode.NOT_FOUND], unchanged: true });
  }
  for (const argv of [['--bogus'], ['groups', '--bogus'], ['groups', '--group', 'x'], ['groups', '--group', '-1'], ['groups', '--group', '1e400'], ['groups', '--group', 'x'.repeat(100_000)],
    ['bind'], ['unbind'], ['vfs', PF.bdf], ['grant', VFIO_DEV], ['apply'], ['apply', '--export', 'x'], ['persist', '--remove', 'x'], ['show'], ['reset-plan'], ['nosuchcommand'], ['x'.repeat(100_000)],
    ['completion', 'tcsh'], ['completion', 'x'.repeat(10_000)], ['snapshot', '--tar'], ['doctor', 'extra'], ['groups', '--json', '--json', 'extra']]) {
    cases.push({ name: `argv ${show(argv.join(' '))}`, argv: () => argv, codes: [ExitCode.USAGE, ExitCode.NOT_FOUND], unchanged: true });
  }
  await check(cases, 60);
});

/** Desired-state documents that are wrong in every way a file can be. */
function badDocuments(): [string, string | Buffer][] {
  const docs: [string, string | Buffer][] = [];
  const entry = (e: unknown) => JSON.stringify({ schemaVersion: 1, devices: [e] });
  docs.push(['empty', ''], ['blank', ' \n\t '], ['BOM only', '\ufeff'], ['null', 'null'], ['array', '[]'], ['object', '{}'], ['number', '1'], ['string', '"x"']);
  docs.push(['truncated', '{"schemaVersion": 1, "devices": [{"match": "0000:01:00.0"'], ['trailing garbage', '{"schemaVersion":1,"devices":[]} x']);
  docs.push(['NUL bytes', Buffer.alloc(4096)], ['UTF-16', Buffer.from('\ufeff{"schemaVersion":1,"devices":[]}', 'utf16le')]);
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let i = 0; i < 6; i++) docs.push([`binary ${i}`, Buffer.from(Array.from({ length: 64 << i }, rand))]);
  docs.push([`nested ${MAX_DEPTH + 1} deep`, `${'['.repeat(MAX_DEPTH + 1)}${']'.repeat(MAX_DEPTH + 1)}`]);
  docs.push(['nested 200,000 deep (arrays)', '['.repeat(200_000)], ['nested 200,000 deep (objects)', '{"a":'.repeat(200_000)]);
  docs.push(['devices nested 100 deep', `{"schemaVersion":1,"devices":${'['.repeat(100)}${']'.repeat(100)}}`]);
  for (const v of ['"1"', '2', '0', '-1', '1.5', '1e308', 'null', 'true', '[]', '{}']) docs.push([`schemaVersion ${v}`, `{"schemaVersion":${v},"devices":[]}`]);
  for (const v of ['{}', '"x"', '1', 'null', 'true']) docs.push([`devices ${v}`, `{"schemaVersion":1,"devices":${v}}`]);
  docs.push(['unknown top field', '{"schemaVersion":1,"devices":[],"extra":1}'], ['huge unknown key', `{"schemaVersion":1,"devices":[],"${'k'.repeat(500_000)}":1}`]);
  docs.push(['duplicate huge key', `{"${'k'.repeat(300_000)}":1,"${'k'.repeat(300_000)}":1}`], ['missing devices', '{"schemaVersion":1}'], ['missing schemaVersion', '{"devices":[]}']);
  for (const m of [1, null, [], {}, true, '', ' ', 'x'.repeat(65), 'x'.repeat(500_000), '../../etc', '/etc/passwd', 'a b', 'eth0\n', 'eth0\u0000', '$(id)', 'é', '\u202e']) {
    docs.push([`match ${show(JSON.stringify(m))}`, entry({ match: m, driver: 'vfio-pci' })]);
  }
  for (const d of [1, null, [], {}, true]) docs.push([`driver ${JSON.stringify(d)}`, entry({ match: DEV, driver: d })]);
  docs.push(['entry not an object', entry('0000:01:00.0')], ['entry missing driver', entry({ match: DEV })], ['entry missing match', entry({ driver: 'vfio-pci' })]);
  docs.push(['entry unknown field', entry({ match: DEV, driver: 'vfio-pci', drvier: 'x' })], ['duplicate match', JSON.stringify({ schemaVersion: 1, devices: [{ match: DEV, driver: 'vfio-pci' }, { match: DEV, driver: 'auto' }] })]);
  docs.push(['no such device', entry({ match: '0000:09:00.0', driver: 'vfio-pci' })], ['control character in string', '{"schemaVersion":1,"devices":[{"match":"a\u0001b","driver":"auto"}]}']);
  docs.push(['bad escape', '{"schemaVersion":1,"devices":[{"match":"\\x41","driver":"auto"}]}'], ['lone surrogate escape', '{"schemaVersion":1,"devices":[{"match":"\\ud800","driver":"auto"}]}']);
  docs.push([`just over the cap (${INPUT_MAX_BYTES + 1} bytes)`, `${' '.repeat(INPUT_MAX_BYTES - 31)}{"schemaVersion":1,"devices":[]}`]);
  docs.push(['3 MiB of a valid document padded with blanks', `{"schemaVersion":1,"devices":[]}${' '.repeat(3 << 20)}`]);
  return docs;
}

test('desired-state files and standard input: huge, deep, binary, wrong types: exit 2 or 3, a short message, nothing changes', async () => {
  const cases: Case[] = [];
  const docs = badDocuments();
  fs.mkdirSync(FILES, { recursive: true });
  docs.forEach(([name, body], i) => {
    const file = path.join(FILES, `doc-${i}.json`);
    put(file, body);
    const codes = [ExitCode.USAGE, ExitCode.NOT_FOUND];
    cases.push({ name: `apply file: ${name}`, argv: () => ['apply', file], codes, unchanged: true });
    cases.push({ name: `apply --dry-run --json file: ${name}`, argv: () => ['apply', '--dry-run', '--json', file], codes, unchanged: true });
    cases.push({ name: `persist file: ${name}`, argv: () => ['persist', file], codes, unchanged: true });
    cases.push({ name: `persist --dry-run file: ${name}`, argv: () => ['persist', '--dry-run', file], codes, unchanged: true });
    cases.push({ name: `apply - : ${name}`, argv: () => ['apply', '-'], stdin: { text: Buffer.isBuffer(body) ? body.toString('utf8') : body }, codes, unchanged: true });
  });
  // What cannot be read to the end: the input stops at the cap.
  for (const [name, repeat] of [['yes |', 'y\n'], ['/dev/zero |', '\u0000'], ['an endless document', '{"a":1,']] as const) {
    cases.push({ name: `${name} vfioctl apply -`, argv: () => ['apply', '-'], stdin: { repeat }, codes: [ExitCode.USAGE], unchanged: true });
    cases.push({ name: `${name} vfioctl persist -`, argv: () => ['persist', '-'], stdin: { repeat }, codes: [ExitCode.USAGE], unchanged: true });
  }
  for (const [name, file] of [['/dev/zero', '/dev/zero'], ['/dev/null', '/dev/null'], ['a directory', FILES], ['a missing file', path.join(FILES, 'missing.json')], ['an empty name', ''],
    ['a name with NUL', 'a\u0000b'], ['a 5,000-character name', 'x'.repeat(5000)], ['a FIFO without a writer', path.join(FILES, 'fifo')]] as const) {
    for (const cmd of ['apply', 'persist']) cases.push({ name: `${cmd} ${name}`, argv: () => [cmd, file], codes: [ExitCode.USAGE, ExitCode.NOT_FOUND], unchanged: true });
  }
  spawnSync('mkfifo', [path.join(FILES, 'fifo')]);
  await check(cases, 350);
});

test('--root and VFIOCTL_ROOT: missing, empty, a file, a link loop, a dangling link are usage errors (exit 2), never "the IOMMU is off"', async () => {
  const roots = path.join(base.root, 'roots');
  fs.mkdirSync(roots, { recursive: true });
  put(path.join(roots, 'file'), 'x');
  fs.symlinkSync('loop-b', path.join(roots, 'loop-a'));
  fs.symlinkSync('loop-a', path.join(roots, 'loop-b'));
  fs.symlinkSync('nowhere', path.join(roots, 'dangling'));
  fs.symlinkSync('file', path.join(roots, 'link-to-file'));
  const bad: [string, string][] = [
    ['missing', path.join(roots, 'missing')], ['empty', ''], ['a file', path.join(roots, 'file')], ['a link loop', path.join(roots, 'loop-a')],
    ['a dangling link', path.join(roots, 'dangling')], ['a link to a file', path.join(roots, 'link-to-file')], ['below a file', path.join(roots, 'file/sub')],
    ['with NUL', 'a\u0000b'], ['5,000 characters', `/${'x'.repeat(5000)}`], ['relative missing', 'no/such/dir'],
  ];
  const commands = [['groups'], ['groups', '--json'], ['show', DEV], ['doctor'], ['bind', DEV, '--dry-run'], ['apply', '--export']];
  const cases: Case[] = [];
  for (const [name, value] of bad) {
    for (const cmd of commands) {
      cases.push({ name: `--root ${name}: ${cmd.join(' ')}`, noRoot: true, argv: () => ['--root', value, ...cmd], codes: [ExitCode.USAGE], unchanged: true });
      cases.push({ name: `--root=${name}: ${cmd.join(' ')}`, noRoot: true, argv: () => [`--root=${value}`, ...cmd], codes: [ExitCode.USAGE], unchanged: true });
      if (!value.includes('\u0000')) cases.push({ name: `VFIOCTL_ROOT ${name}: ${cmd.join(' ')}`, noRoot: true, env: { VFIOCTL_ROOT: value }, argv: () => cmd, codes: [ExitCode.USAGE], unchanged: true });
    }
  }
  await check(cases, 150);
});

/** Trees with garbage in them, and links that lead out of the root. */
function badTrees(): [string, (p: Paths) => void][] {
  const dev = (p: Paths, bdf = DEV) => fs.realpathSync(path.join(p.root, 'sys/bus/pci/devices', bdf));
  const replace = (file: string, make: () => void) => {
    fs.rmSync(file, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(file), { recursive: true });
    make();
  };
  const fifo = (file: string) => replace(file, () => spawnSync('mkfifo', [file]));
  const link = (file: string, target: string) => replace(file, () => fs.symlinkSync(target, file));
  const trees: [string, (p: Paths) => void][] = [];
  for (const attr of ['modalias', 'vendor', 'class', 'driver_override', 'reset_method', 'numa_node', 'sriov_numvfs', 'enable', 'boot_vga']) {
    trees.push([`binary ${attr}`, (p) => put(path.join(dev(p), attr), Buffer.from([0, 255, 10, 27, 91, 50, 74, 0]))]);
    trees.push([`2 MiB ${attr}`, (p) => put(path.join(dev(p), attr), 'A'.repeat(2 << 20))]);
    trees.push([`FIFO in place of ${attr}`, (p) => fifo(path.join(dev(p), attr))]);
    trees.push([`${attr} links outside the root`, (p) => link(path.join(dev(p), attr), path.join(OUT_DEV, 'modalias'))]);
  }
  for (const f of ['proc/cmdline', 'proc/sys/kernel/osrelease', 'lib/modules/6.1.0-test/modules.alias', 'etc/passwd', 'usr/share/misc/pci.ids', 'proc/mounts']) {
    trees.push([`FIFO in place of ${f}`, (p) => fifo(path.join(p.root, f))]);
    trees.push([`${f} links outside the root`, (p) => link(path.join(p.root, f), path.join(OUTSIDE, f.endsWith('passwd') ? 'passwd' : 'modules.alias'))]);
  }
  trees.push(['sriov_numvfs 2000000000, totalvfs 4', (p) => put(path.join(dev(p, PF.bdf), 'sriov_numvfs'), '2000000000\n')]);
  trees.push(['sriov_numvfs and totalvfs 2000000000', (p) => {
    put(path.join(dev(p, PF.bdf), 'sriov_numvfs'), '2000000000\n');
    put(path.join(dev(p, PF.bdf), 'sriov_totalvfs'), '2000000000\n');
  }]);
  trees.push(['sriov_numvfs -5', (p) => put(path.join(dev(p, PF.bdf), 'sriov_numvfs'), '-5\n')]);
  trees.push(['virtfn links to outside', (p) => { put(path.join(dev(p, PF.bdf), 'sriov_numvfs'), '2\n'); link(path.join(dev(p, PF.bdf), 'virtfn0'), OUT_DEV); link(path.join(dev(p, PF.bdf), 'virtfn1'), '../../../../../../..'); }]);
  trees.push(['osrelease ../../..', (p) => put(path.join(p.root, 'proc/sys/kernel/osrelease'), `../../../../../../../../..${OUTSIDE}\n`)]);
  trees.push(['osrelease ..', (p) => put(path.join(p.root, 'proc/sys/kernel/osrelease'), '..\n')]);
  trees.push(['osrelease with NUL and newline', (p) => put(path.join(p.root, 'proc/sys/kernel/osrelease'), 'a\u0000b\nc\n')]);
  trees.push(['lib/modules links outside', (p) => link(path.join(p.root, 'lib/modules'), OUTSIDE)]);
  trees.push(['device link to /etc', (p) => link(path.join(p.root, 'sys/bus/pci/devices/0000:00:03.0'), '/etc')]);
  trees.push(['device link outside (absolute)', (p) => link(path.join(p.root, 'sys/bus/pci/devices/0000:00:03.0'), OUT_DEV)]);
  trees.push(['device link outside (relative)', (p) => link(path.join(p.root, 'sys/bus/pci/devices/0000:00:03.0'), path.relative(path.join(p.root, 'sys/bus/pci/devices'), OUT_DEV))]);
  trees.push(['device directory is a link outside', (p) => link(dev(p, '0000:00:03.0'), OUT_DEV)]);
  trees.push(['sys/devices links outside', (p) => link(path.join(p.root, 'sys/devices'), path.join(OUTSIDE, 'dir'))]);
  trees.push(['device link dangling', (p) => link(path.join(p.root, 'sys/bus/pci/devices/0000:00:03.0'), '../../../devices/nowhere')]);
  trees.push(['device link loop', (p) => link(path.join(p.root, 'sys/bus/pci/devices/0000:00:03.0'), '0000:00:03.0')]);
  trees.push(['sys loops to itself', (p) => link(path.join(p.root, 'sys/kernel/iommu_groups'), '../kernel/iommu_groups')]);
  trees.push(['driver link named ..', (p) => link(path.join(dev(p), 'driver'), '../../../../..')]);
  trees.push(['driver link outside', (p) => link(path.join(dev(p), 'driver'), path.join(OUTSIDE, 'dir'))]);
  trees.push(['drivers/e1000e links outside', (p) => link(path.join(p.root, 'sys/bus/pci/drivers/e1000e'), path.join(OUTSIDE, 'dir'))]);
  trees.push(['a driver directory named "a b" leading outside', (p) => link(path.join(p.root, 'sys/bus/pci/drivers/a b'), path.join(OUTSIDE, 'dir'))]);
  trees.push(['module link naming a path', (p) => link(path.join(p.root, 'sys/bus/pci/drivers/vfio-pci/module'), '../../../../..')]);
  trees.push(['/sys/module/vfio_pci/drivers/pci:.. entry', (p) => link(path.join(p.root, 'sys/module/vfio_pci/drivers/pci:..'), '../../../bus/pci/drivers')]);
  trees.push(['modules.alias naming a path module', (p) => put(path.join(p.root, 'lib/modules/6.1.0-test/modules.alias'), 'alias vfio_pci:v*d*sv*sd*bc*sc*i* ../../../../tmp\nalias vfio_pci:v00008086d*sv*sd*bc*sc*i* ..\n')]);
  trees.push(['iommu_group link outside', (p) => link(path.join(dev(p), 'iommu_group'), path.join(OUTSIDE, 'dir'))]);
  trees.push(['iommu_groups links outside', (p) => link(path.join(p.root, 'sys/kernel/iommu_groups'), path.join(OUTSIDE, 'dir'))]);
  trees.push(['class/net/eth0 links outside', (p) => link(path.join(p.root, 'sys/class/net/eth0'), OUT_DEV)]);
  trees.push(['etc links outside', (p) => link(path.join(p.root, 'etc'), OUTSIDE)]);
  trees.push(['driver_override of 100 KiB', (p) => put(path.join(dev(p), 'driver_override'), `${'x'.repeat(100 << 10)}\n`)]);
  trees.push(['reset_method of 10,000 words', (p) => put(path.join(dev(p), 'reset_method'), `${'bus '.repeat(10_000)}\n`)]);
  trees.push(['group directory names of garbage', (p) => fs.mkdirSync(path.join(p.root, 'sys/kernel/iommu_groups', '99999999999999999999'), { recursive: true })]);
  trees.push(['devices listing holds a file named like a BDF', (p) => put(path.join(p.root, 'sys/bus/pci/devices/0000:00:1f.7'), 'x')]);
  return trees;
}

test('trees with garbage, huge and FIFO attributes, dangling, looping and escaping links: no crash, no hang, nothing read or written outside', async () => {
  const commands: [string, string[], readonly number[]][] = [
    ['groups', ['groups'], [0, 1, 3]],
    ['groups --json', ['groups', '--json'], [0, 1, 3]],
    ['show', ['show', DEV], [0, 1, 3]],
    ['doctor', ['doctor'], [0, 1, 3]],
    ['variants', ['variants', DEV], [0, 1, 3]],
    ['reset-plan', ['reset-plan', DEV], [0, 1, 3, 4]],
    ['bind --dry-run', ['bind', DEV, '--dry-run'], [0, 1, 3, 4]],
  ];
  const cases: Case[] = [];
  for (const [tree, setup] of badTrees()) {
    for (const [cmd, argv, codes] of commands) cases.push({ name: `${tree}: ${cmd}`, setup, argv: () => argv, codes, unchanged: true });
  }
  await check(cases, 500);
});

test('writes never follow a link out of the root (grant, persist, bind, unbind, apply); links inside it still work', async () => {
  const link = (file: string, target: string) => {
    fs.rmSync(file, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.symlinkSync(target, file);
  };
  const desired = path.join(FILES, 'good.json');
  put(desired, JSON.stringify({ schemaVersion: 1, devices: [{ match: DEV, driver: 'vfio-pci' }] }));
  const cases: Case[] = [
    { name: 'dev/vfio/7 -> outside file: grant', setup: (p) => link(path.join(p.root, 'dev/vfio/7'), path.join(OUTSIDE, 'file')), argv: () => ['grant', VFIO_DEV, '--user', 'alice'], codes: [ExitCode.REFUSED, ExitCode.NOT_FOUND], unchanged: true },
    { name: 'dev/vfio/7 -> outside file: grant --revoke', setup: (p) => link(path.join(p.root, 'dev/vfio/7'), path.join(OUTSIDE, 'file')), argv: () => ['grant', VFIO_DEV, '--revoke'], codes: [ExitCode.OK, ExitCode.REFUSED, ExitCode.NOT_FOUND], unchanged: false },
    { name: 'dev/vfio -> outside dir: grant', setup: (p) => { link(path.join(p.root, 'dev/vfio'), path.join(OUTSIDE, 'dir')); }, argv: () => ['grant', VFIO_DEV, '--user', 'alice'], codes: [ExitCode.REFUSED, ExitCode.NOT_FOUND], unchanged: true },
    { name: 'dev -> outside (relative): grant', setup: (p) => link(path.join(p.root, 'dev'), path.relative(p.root, OUTSIDE)), argv: () => ['grant', VFIO_DEV, '--user', 'alice'], codes: [ExitCode.REFUSED, ExitCode.NOT_FOUND], unchanged: true },
    { name: 'etc/udev -> outside dir: persist', setup: (p) => link(path.join(p.root, 'etc/udev'), path.join(OUTSIDE, 'dir')), argv: () => ['persist', desired], codes: MUTATING_CODES, unchanged: false },
    { name: 'etc -> outside dir: persist', setup: (p) => link(path.join(p.root, 'etc'), path.join(OUTSIDE, 'dir')), argv: () => ['persist', desired], codes: MUTATING_CODES, unchanged: false },
    { name: 'etc/systemd -> ../../outside (relative): persist', setup: (p) => link(path.join(p.root, 'etc/systemd'), path.relative(path.join(p.root, 'etc'), path.join(OUTSIDE, 'dir'))), argv: () => ['persist', desired], codes: MUTATING_CODES, unchanged: false },
    { name: 'etc/vfioctl/desired.json -> outside file: persist', setup: (p) => link(path.join(p.root, 'etc/vfioctl/desired.json'), path.join(OUTSIDE, 'file')), argv: () => ['persist', desired], codes: [0, ...MUTATING_CODES], unchanged: false },
    { name: 'etc/udev -> outside dir: persist --remove', setup: (p) => link(path.join(p.root, 'etc/udev'), path.join(OUTSIDE, 'dir')), argv: () => ['persist', '--remove'], codes: [0, ...MUTATING_CODES], unchanged: false },
    { name: 'run -> outside dir: bind', setup: (p) => link(path.join(p.root, 'run'), path.join(OUTSIDE, 'dir')), argv: () => ['bind', DEV, '--variant', 'vfio-pci'], codes: MUTATING_CODES, unchanged: true },
    { name: 'run/vfioctl -> outside dir: bind', setup: (p) => link(path.join(p.root, 'run/vfioctl'), path.join(OUTSIDE, 'dir')), argv: () => ['bind', DEV, '--variant', 'vfio-pci'], codes: MUTATING_CODES, unchanged: true },
    { name: 'run -> outside dir: bind', setup: (p) => link(path.join(p.root, 'run'), path.join(OUTSIDE, 'dir')), argv: () => ['bind', DEV, '--variant', 'vfio-pci'], codes: MUTATING_CODES, unchanged: true },
    { name: 'run/vfioctl -> outside dir: bind', setup: (p) => link(path.join(p.root, 'run/vfioctl'), path.join(OUTSIDE, 'dir')), argv: () => ['bind', DEV, '--variant', 'vfio-pci'], codes: MUTATING_CODES, unchanged: false },
    { name: 'run -> outside dir: apply', setup: (p) => link(path.join(p.root, 'run'), path.join(OUTSIDE, 'dir')), argv: () => ['apply', desired], codes: MUTATING_CODES, unchanged: true },
    { name: 'run -> outside dir: unbind', setup: (p) => link(path.join(p.root, 'run'), path.join(OUTSIDE, 'dir')), argv: () => ['unbind', VFIO_DEV], codes: MUTATING_CODES, unchanged: true },
    { name: 'driver_override -> outside file: bind', setup: (p) => link(path.join(fs.realpathSync(path.join(p.root, 'sys/bus/pci/devices', DEV)), 'driver_override'), path.join(OUTSIDE, 'file')), argv: () => ['bind', DEV, '--variant', 'vfio-pci'], codes: MUTATING_CODES, unchanged: false },
    { name: 'drivers/e1000e/unbind -> outside file: bind', setup: (p) => link(path.join(p.root, 'sys/bus/pci/drivers/e1000e/unbind'), path.join(OUTSIDE, 'file')), argv: () => ['bind', DEV, '--variant', 'vfio-pci'], codes: MUTATING_CODES, unchanged: false },
    { name: 'drivers/vfio-pci -> outside dir: bind', setup: (p) => link(path.join(p.root, 'sys/bus/pci/drivers/vfio-pci'), path.join(OUTSIDE, 'dir')), argv: () => ['bind', DEV, '--variant', 'vfio-pci'], codes: MUTATING_CODES, unchanged: false },
    { name: 'drivers_probe -> outside file: unbind', setup: (p) => link(path.join(p.root, 'sys/bus/pci/drivers_probe'), path.join(OUTSIDE, 'file')), argv: () => ['unbind', VFIO_DEV], codes: MUTATING_CODES, unchanged: false },
    { name: 'sriov_numvfs -> outside file: vfs', setup: (p) => link(path.join(fs.realpathSync(path.join(p.root, 'sys/bus/pci/devices', PF.bdf)), 'sriov_numvfs'), path.join(OUTSIDE, 'file')), argv: () => ['vfs', PF.bdf, '--count', '1'], codes: MUTATING_CODES, unchanged: false },
    // Controls: links that stay inside the root keep working.
    { name: 'etc/udev -> udev.real inside the root: persist works', setup: (p) => { fs.mkdirSync(path.join(p.root, 'etc/udev.real'), { recursive: true }); link(path.join(p.root, 'etc/udev'), 'udev.real'); }, argv: () => ['persist', desired], codes: [ExitCode.OK], unchanged: false },
    { name: 'dev/vfio/7 -> 7.real inside the root: grant works', setup: (p) => { put(path.join(p.root, 'dev/vfio/7.real'), '', 0o600); link(path.join(p.root, 'dev/vfio/7'), '7.real'); }, argv: () => ['grant', VFIO_DEV, '--user', 'alice'], codes: [ExitCode.OK], unchanged: false },
  ];
  if (process.getuid?.() !== 0) cases.splice(0, 4); // chown needs root; the rest still run
  await check(cases, 15);
});

test('the harness sees what it must: a change outside the root, a wrong exit code', async () => {
  // The snapshot notices a changed mode and a new file.
  const before = snapshot(OUTSIDE);
  fs.chmodSync(path.join(OUTSIDE, 'file'), 0o600);
  put(path.join(OUTSIDE, 'dir/new'), 'x');
  assert.deepEqual(diff(before, snapshot(OUTSIDE)).sort(), ['added dir/new', 'changed file']);
  fs.chmodSync(path.join(OUTSIDE, 'file'), 0o640);
  fs.rmSync(path.join(OUTSIDE, 'dir/new'));
  // A case whose expectations are wrong fails.
  const failures = await runCases([{ name: 'control', argv: () => ['groups'], codes: [ExitCode.USAGE], unchanged: true }]);
  assert.equal(failures.length, 1);
  assert.match(failures[0]!, /exit 0, expected one of 2/);
});

test('the real process: apply - from /dev/zero stops at the cap; groups > /dev/full exits 1 with the reason on stderr', (t) => {
  const root = freshCopy();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const zero = fs.openSync('/dev/zero', 'r');
  t.after(() => fs.closeSync(zero));
  const r = spawnSync(process.execPath, [BIN, '--root', root, 'apply', '-'], { stdio: [zero, 'pipe', 'pipe'], encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.signal, null, 'apply - on /dev/zero did not stop');
  assert.equal(r.status, ExitCode.USAGE, r.stderr);
  assert.match(r.stderr, /larger than 1048576 bytes/);
  assert.ok(r.stderr.length < 500);

  if (!fs.existsSync('/dev/full')) return t.skip('no /dev/full');
  const full = fs.openSync('/dev/full', 'w');
  t.after(() => fs.closeSync(full));
  const g = spawnSync(process.execPath, [BIN, '--root', root, 'groups'], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8', timeout: 20_000 });
  assert.equal(g.status, ExitCode.FAILURE, g.stderr);
  assert.equal(g.stderr, 'vfioctl: cannot write to standard output: no space left (ENOSPC)\n');
});

test('bad-input suite size', () => {
  // Runs last (node:test runs a file's tests in order): the generated cases above.
  assert.ok(total >= 1500, `only ${total} cases ran`);
  console.log(`bad-input suite: ${total} cases`);
});
