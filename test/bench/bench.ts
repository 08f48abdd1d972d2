import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { synthHost, writeHost } from './synth.js';

/**
 * `npm run bench`: time `vfioctl groups` on synthetic hosts of 4,096 and 120 PCI functions
 * against bare Node start-up (`node -e 0`), lspci, a shell lsgroup loop and the same sysfs
 * reads done from C (floor.c, when cc is there). Each is a spawned process whose output is
 * read through a pipe, as a provisioning script reads the JSON, except the table drawn on a
 * pseudo-terminal (script(1), when installed) against the same through a pipe; runs are interleaved so
 * load changes hit every command alike. Not a test: it reports and compares with the
 * targets, and exits 0 either way.
 *
 * Env: BENCH_RUNS (default 15), BENCH_DIR (reuse/keep generated trees there).
 */
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = path.join(REPO, 'bin/vfioctl');
const RUNS = Math.max(3, Number(process.env.BENCH_RUNS) || 15);
const TARGETS: Record<number, number> = { 4096: 150, 120: 25 };

interface Cmd {
  label: string;
  file: string;
  args: string[];
}
interface Timing {
  wall: number[];
  cpu: number[];
}

/** Children's user+system CPU so far, from /proc/self/stat (clock ticks, usually 10 ms). */
function childCpuMs(): number {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

function runOnce(c: Cmd): { wall: number; cpu: number; ok: boolean } {
  const cpu0 = childCpuMs();
  const t0 = process.hrtime.bigint();
  // stdout is a pipe read to the end, as a provisioning script reads the JSON.
  const r = spawnSync(c.file, c.args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  return { wall, cpu: childCpuMs() - cpu0, ok: r.status === 0 };
}

function shuffled<T>(xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function measure(cmds: Cmd[], runs: number): Map<Cmd, Timing> {
  const out = new Map(cmds.map((c) => [c, { wall: [], cpu: [] } as Timing]));
  for (const c of cmds) {
    const r = runOnce(c); // warm the page cache; not counted
    if (!r.ok) throw new Error(`${c.label} failed: ${c.file} ${c.args.join(' ')}`);
  }
  for (let i = 0; i < runs; i++) {
    // A new order each round: in a fixed one, whatever runs just before a command (a big
    // scan, a tiny C program) shifts its time, by as much as 15 ms here.
    for (const c of shuffled(cmds)) {
      const r = runOnce(c);
      out.get(c)!.wall.push(r.wall);
      out.get(c)!.cpu.push(r.cpu);
    }
  }
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * test/bench/floor.c built into `dir` when a C compiler is there: the files groups --json
 * needs, read from C with nothing else, which is what the kernel charges for the data.
 */
function buildFloor(dir: string): string | null {
  const out = path.join(dir, 'floor');
  const r = spawnSync('cc', ['-O2', '-o', out, path.join(REPO, 'test/bench/floor.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
  return r.status === 0 ? out : null;
}

function hasScript(): boolean {
  return spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * `vfioctl groups` with its stdout on a pseudo-terminal (the fitted table) or on a pipe, both
 * under script(1) so that both pay the same for it: what a terminal costs over a pipe.
 */
function ttyCommands(root: string): [Cmd, Cmd] {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const line = `COLUMNS=120 ${[process.execPath, BIN, '--root', root, 'groups'].map(q).join(' ')}`;
  return [
    { label: 'groups on a terminal', file: 'script', args: ['-qec', line, '/dev/null'] },
    { label: 'groups | cat (same pty)', file: 'script', args: ['-qec', `${line} | cat`, '/dev/null'] },
  ];
}

function hasLspci(): boolean {
  return spawnSync('lspci', ['--version'], { stdio: 'ignore' }).status === 0;
}

function ensureHost(dir: string, n: number): string {
  const root = path.join(dir, `host-${n}`);
  const marker = path.join(root, '.complete');
  if (fs.existsSync(marker)) return root;
  fs.rmSync(root, { recursive: true, force: true });
  const t = Date.now();
  writeHost(root, synthHost(n));
  fs.writeFileSync(marker, '');
  console.log(`generated ${n}-function host in ${root} (${Date.now() - t} ms)`);
  return root;
}

// The classic lsgroup loop from the VFIO guides, pointed at the tree; its arguments are
// positional parameters, never spliced into the script.
const LSGROUP = `
root=$1; limit=$2; n=0
for g in $(find "$root/sys/kernel/iommu_groups/" -mindepth 1 -maxdepth 1 -type d | sort -V); do
  echo "IOMMU Group \${g##*/}:"
  for d in "$g"/devices/*; do
    echo "	$(lspci -A linux-sysfs -O sysfs.path="$root/sys/bus/pci" -nns "\${d##*/}" 2>/dev/null)"
    n=$((n+1)); [ "$n" -ge "$limit" ] && exit 0
  done
done`;

function main(): void {
  const keep = process.env.BENCH_DIR;
  const dir = keep ? path.resolve(keep) : fs.mkdtempSync(path.join(os.tmpdir(), 'vfioctl-bench-'));
  fs.mkdirSync(dir, { recursive: true });
  const lspci = hasLspci();
  const floor = buildFloor(dir);
  const script = hasScript();
  console.log(`vfioctl bench: node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, ${RUNS} runs each, medians\n`);
  try {
    const lines: string[] = [];
    for (const n of [4096, 120]) {
      const root = ensureHost(dir, n);
      const node: Cmd = { label: 'node -e 0', file: process.execPath, args: ['-e', '0'] };
      const json: Cmd = { label: 'vfioctl groups --json', file: process.execPath, args: [BIN, '--root', root, 'groups', '--json'] };
      const table: Cmd = { label: 'vfioctl groups', file: process.execPath, args: [BIN, '--root', root, 'groups'] };
      const cmds = [node, json, table];
      const lspciCmd: Cmd = { label: 'lspci -D -k', file: 'lspci', args: ['-D', '-k', '-A', 'linux-sysfs', '-O', `sysfs.path=${root}/sys/bus/pci`] };
      if (lspci) cmds.push(lspciCmd);
      const floorCmd: Cmd = { label: 'same files from C', file: floor ?? '', args: [root] };
      if (floor) cmds.push(floorCmd);
      const [tty, ttyPipe] = ttyCommands(root);
      if (script) cmds.push(tty, ttyPipe);
      const t = measure(cmds, RUNS);
      const base = median(t.get(node)!.wall);
      const baseCpu = median(t.get(node)!.cpu);
      console.log(`${n} functions (${root})`);
      console.log('  command                      wall ms   vs node     ratio    cpu ms');
      for (const c of cmds) {
        const w = median(t.get(c)!.wall);
        const cpu = median(t.get(c)!.cpu);
        const diff = c === node ? '' : `${w - base >= 0 ? '+' : ''}${(w - base).toFixed(0)}`;
        console.log(`  ${c.label.padEnd(26)} ${w.toFixed(0).padStart(8)} ${diff.padStart(9)} ${(w / base).toFixed(2).padStart(8)}x ${cpu.toFixed(0).padStart(8)}`);
      }
      const over = median(t.get(json)!.wall) - base;
      const overCpu = median(t.get(json)!.cpu) - baseCpu;
      const target = TARGETS[n]!;
      lines.push(`${n} functions: groups --json is ${over.toFixed(0)} ms (wall) / ${overCpu.toFixed(0)} ms (cpu) over node start-up; target ${target} ms: ${over <= target ? 'MET' : 'MISSED'}`);
      if (lspci) {
        const l = median(t.get(lspciCmd)!.wall);
        lines.push(`${n} functions: lspci -D -k ${l.toFixed(0)} ms, vfioctl groups --json ${median(t.get(json)!.wall).toFixed(0)} ms`);
      }
      if (floor) {
        const f = median(t.get(floorCmd)!.wall);
        lines.push(`${n} functions: reading the same sysfs files from C (floor.c) takes ${f.toFixed(0)} ms; vfioctl's own cost over node start-up and that floor: ${(over - f).toFixed(0)} ms`);
      }
      if (script) {
        const a = median(t.get(tty)!.wall);
        const b = median(t.get(ttyPipe)!.wall);
        lines.push(`${n} functions: groups on a terminal ${a.toFixed(0)} ms, through a pipe ${b.toFixed(0)} ms (both under script(1)): the terminal costs ${(a - b).toFixed(0)} ms more`);
      }
      if (lspci && n === 4096) {
        // The loop runs lspci once per device: time a slice and scale it to every function.
        const slice = 64;
        const loop = measure([{ label: 'lsgroup loop', file: 'bash', args: ['-c', LSGROUP, 'lsgroup', root, String(slice)] }], 3);
        const per = median([...loop.values()][0]!.wall) / slice;
        lines.push(`${n} functions: shell lsgroup loop ~${((per * n) / 1000).toFixed(1)} s (extrapolated from ${slice} devices at ${per.toFixed(1)} ms each)`);
      }
      console.log('');
    }
    if (!lspci) lines.push('lspci not installed (pciutils): lspci and lsgroup-loop timings skipped');
    if (!floor) lines.push('no C compiler (cc): the floor.c reference skipped');
    if (!script) lines.push('script(1) not installed: the terminal timing skipped');
    console.log(lines.join('\n'));
  } finally {
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
