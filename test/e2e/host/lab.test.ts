/**
 * Host side of `npm run test:e2e`: boots one VM per lab topology (two at a time
 * on CI's 2 cores) and reports every guest scenario as a subtest here, so the
 * whole run ends in one Node test-runner summary. A failure prints the guest's
 * console tail. Every topology boots on every lab kernel LAB_KERNEL picks (debian, cdev or
 * all, the default). LAB_TOPOLOGIES=a,b limits the run; LAB_VM_TIMEOUT (s) bounds each VM.
 */
import { test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TOPOLOGIES } from '../lab/topologies.js';
import { bootVm, consoleTail, labKernels, labPaths, type LabPaths, type VmResult } from '../lab/vm.js';
import { buildTree, type ResultLine, type ResultNode } from '../lab/jsonl-reporter.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const kernels = labKernels(process.env.LAB_KERNEL);
const wanted = process.env.LAB_TOPOLOGIES?.split(',').filter(Boolean);
const topologies = TOPOLOGIES.filter((t) => !wanted || wanted.includes(t.name));
// Generous: TCG on 2 shared cores runs a busy VM 2-3x slower than a quiet one; a hung guest
// still ends well inside CI's 90 minutes (see LAB_TOTAL_TIMEOUT in run.sh).
const timeoutSec = Number(process.env.LAB_VM_TIMEOUT ?? 600);
const parallel = Number(process.env.LAB_PARALLEL ?? 2);

// Start every VM now (bounded), report them in order as they finish.
let slots = parallel;
const waiters: (() => void)[] = [];
async function withSlot<R>(fn: () => Promise<R>): Promise<R> {
  if (slots === 0) await new Promise<void>((r) => waiters.push(r));
  else slots--;
  try {
    return await fn();
  } finally {
    const w = waiters.shift();
    if (w) w();
    else slots++;
  }
}
/** One retry when the guest never reached the scenarios (e.g. an early panic under TCG). */
async function bootWithRetry(paths: LabPaths, t: (typeof topologies)[number]): Promise<VmResult> {
  const first = await bootVm(paths, t, 'test', { timeoutSec, smp: 1 });
  if (first.timedOut || fs.existsSync(path.join(first.outDir, 'rc'))) return first;
  fs.renameSync(first.consoleLog, `${first.consoleLog}.first-boot`);
  return bootVm(paths, t, 'test', { timeoutSec, smp: 1 });
}
const runs = new Map<string, Promise<VmResult>>();
for (const k of kernels) {
  const paths = labPaths(repo, k);
  for (const t of topologies) runs.set(`${k}/${t.name}`, withSlot(() => bootWithRetry(paths, t)));
}

function readResults(outDir: string): ResultLine[] {
  const file = path.join(outDir, 'results.jsonl');
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as ResultLine);
}


async function relay(t: any, node: ResultNode, tail: () => string): Promise<void> {
  const opts = node.status === 'skip' ? { skip: node.reason || true } : node.status === 'todo' ? { todo: node.reason || true } : {};
  await t.test(node.name, opts, async (sub: any) => {
    for (const c of node.children) await relay(sub, c, tail);
    if (node.status === 'fail' && node.failureType !== 'subtestsFailed') {
      throw new Error(`${node.error ?? 'failed in the guest'}\n--- guest console tail ---\n${tail()}`);
    }
  });
}

for (const k of kernels) for (const topo of topologies) {
  test(`lab ${topo.name} [${k} kernel]: ${topo.description}`, async (t) => {
    const vm = await runs.get(`${k}/${topo.name}`)!;
    const tail = () => consoleTail(vm.consoleLog);
    t.diagnostic(`VM ran ${vm.seconds.toFixed(1)}s, exit ${vm.exitCode}; console: ${path.relative(repo, vm.consoleLog)}`);
    if (vm.timedOut) throw new Error(`VM did not finish within ${timeoutSec}s\n--- guest console tail ---\n${tail()}`);
    const results = readResults(vm.outDir);
    const rcFile = path.join(vm.outDir, 'rc');
    if (results.length === 0 || !fs.existsSync(rcFile)) {
      throw new Error(`the guest reported no results (exit ${vm.exitCode})\n--- guest console tail ---\n${tail()}`);
    }
    for (const node of buildTree(results)) await relay(t, node, tail);
    const rc = fs.readFileSync(rcFile, 'utf8').trim();
    if (rc !== '0' && !results.some((r) => r.status === 'fail')) {
      throw new Error(`guest test runner exited ${rc} without a failing test\n--- guest console tail ---\n${tail()}`);
    }
  });
}
