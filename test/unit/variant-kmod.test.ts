import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { aliasMatches, modaliasFromIds, parseVfioAliases, preferPresent, rankWithFallback } from '../../src/plan/variant.js';
import { buildTree, deviceDir, tempRoot, type TreeSpec } from '../helpers/tree.js';
import { cli } from '../helpers/cli.js';

/** kmod matches modules.alias with fnmatch(3): `?`, `[...]`, `[!...]` too, not only `*`. */
test('aliasMatches: fnmatch ?, *, [...], [a-f] ranges and [!...] / [^...]', () => {
  const s = 'vfio_pci:v000015B3d0000101Esv000015B3sd00000001bc02sc00i00';
  assert.ok(aliasMatches('vfio_pci:v000015B3d0000101?sv*sd*bc*sc*i*', s));
  assert.ok(!aliasMatches('vfio_pci:v000015B3d0000101?sv*sd*bc*sc*i*', s.replace('101E', '101')), '? is exactly one character');
  assert.ok(aliasMatches('vfio_pci:v000015B3d0000101[DEF]sv*sd*bc*sc*i*', s));
  assert.ok(!aliasMatches('vfio_pci:v000015B3d0000101[ABC]sv*sd*bc*sc*i*', s));
  assert.ok(aliasMatches('vfio_pci:v000015B3d0000101[A-F]sv*sd*bc*sc*i*', s));
  assert.ok(!aliasMatches('vfio_pci:v000015B3d0000101[0-9]sv*sd*bc*sc*i*', s));
  assert.ok(aliasMatches('vfio_pci:v000015B3d0000101[!0-9]sv*sd*bc*sc*i*', s));
  assert.ok(!aliasMatches('vfio_pci:v000015B3d0000101[!E]sv*sd*bc*sc*i*', s));
  assert.ok(aliasMatches('vfio_pci:v000015B3d0000101[^0-9]sv*sd*bc*sc*i*', s));
  // Regex metacharacters are literal; an unclosed [ is a literal [.
  assert.ok(!aliasMatches('vfio_pci:v.*', s));
  assert.ok(aliasMatches('a[b', 'a[b'));
  assert.ok(aliasMatches('a[]]b', 'a]b'), '] first in a set is a member');
  assert.ok(aliasMatches('a\\*b', 'a*b') && !aliasMatches('a\\*b', 'axb'), 'backslash quotes');
});

test('ranking keeps specificity with ? and brackets: fewest * first, then file order', () => {
  const aliases = parseVfioAliases(`alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci
alias vfio_pci:v000015B3d0000101[DE]sv*sd*bc*sc*i* mlx5_vfio_pci
alias vfio_pci:v000015B3d0000101?sv000015B3sd*bc*sc*i* mlx5_special
`);
  const ranked = rankWithFallback(aliases, 'pci:v000015B3d0000101Esv000015B3sd00000001bc02sc00i00').map((a) => a.module);
  assert.deepEqual(ranked, ['mlx5_special', 'mlx5_vfio_pci', 'vfio_pci']);
  assert.deepEqual(preferPresent(rankWithFallback(aliases, 'pci:v000015B3d0000101Esv000015B3sd00000001bc02sc00i00'), (m) => (m === 'mlx5_special' ? false : null)).map((a) => a.module),
    ['mlx5_vfio_pci', 'mlx5_special', 'vfio_pci']);
});

test('modaliasFromIds: the kernel format from the id files', () => {
  assert.equal(modaliasFromIds({ vendorId: '15b3', deviceId: '101e', subsystemVendorId: '15b3', subsystemDeviceId: '0001', classCode: '020000' }),
    'pci:v000015B3d0000101Esv000015B3sd00000001bc02sc00i00');
  assert.equal(modaliasFromIds({ vendorId: '15b3', deviceId: '101e', subsystemVendorId: null, subsystemDeviceId: null, classCode: '020000' }), null);
});

const SPEC: TreeSpec = {
  osrelease: '6.12.0-test',
  modulesAlias: `alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci
alias vfio_pci:v000015B3d0000101?sv*sd*bc*sc*i* mlx5_gone
`,
  drivers: { mlx5_core: 'mlx5_core', 'vfio-pci': 'vfio_pci' },
  devices: [
    { bdf: '0000:00:00.0', id: '8086:29c0', class: '060000', group: 0, resetMethods: null },
    { bdf: '0000:00:03.0', id: '15b3:101e', subsystem: '15b3:0001', class: '020000', driver: 'mlx5_core', group: 3 },
  ],
};

function setup(t: { after: (fn: () => void) => void }): string {
  const { root, cleanup } = tempRoot('vfioctl-kmod-');
  t.after(cleanup);
  return buildTree(root, SPEC);
}

const modDir = (root: string) => path.join(root, 'lib/modules/6.12.0-test');
function installed(root: string, kos: string[]): void {
  fs.writeFileSync(path.join(modDir(root), 'modules.dep'), kos.map((k) => `${k}: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz\n`).join(''));
  for (const k of kos) {
    fs.mkdirSync(path.dirname(path.join(modDir(root), k)), { recursive: true });
    fs.writeFileSync(path.join(modDir(root), k), '');
  }
}

test('variants: a module listed in modules.alias but not installed is flagged and not chosen', async (t) => {
  const root = setup(t);
  // No modules.dep: presence unknown; the tie between equally specific aliases goes to file order.
  let r = await cli(['variants', '00:03.0', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  let d = r.json().devices[0];
  assert.deepEqual(d.candidates.map((c: { module: string; present: boolean | null }) => [c.module, c.present]), [['mlx5_vfio_pci', null], ['mlx5_gone', null], ['vfio_pci', true]], 'vfio_pci is loaded (/sys/module/vfio_pci)');
  // mlx5_vfio_pci is not installed, mlx5_gone is listed in modules.dep but its file is gone; vfio_pci is built in.
  installed(root, ['kernel/drivers/vfio/pci/mlx5/mlx5-gone.ko.xz']);
  fs.rmSync(path.join(modDir(root), 'kernel/drivers/vfio/pci/mlx5/mlx5-gone.ko.xz'));
  fs.writeFileSync(path.join(modDir(root), 'modules.builtin'), 'kernel/drivers/vfio/pci/vfio-pci.ko\n');
  r = await cli(['variants', '00:03.0', '--json'], root);
  d = r.json().devices[0];
  assert.deepEqual(d.candidates.map((c: { module: string; present: boolean | null }) => [c.module, c.present]), [['mlx5_vfio_pci', false], ['mlx5_gone', false], ['vfio_pci', true]]);
  assert.equal(d.chosen, 'vfio_pci', 'the first candidate that exists');
  // Installed: chosen again.
  installed(root, ['kernel/drivers/vfio/pci/mlx5/mlx5-vfio-pci.ko.zst']);
  r = await cli(['variants', '00:03.0', '--json'], root);
  d = r.json().devices[0];
  assert.equal(d.candidates[0].present, true);
  assert.equal(d.chosen, 'mlx5_vfio_pci');
});

test('bind --dry-run: naming a variant whose module is not installed is refused at plan time (exit 4)', async (t) => {
  const root = setup(t);
  installed(root, ['kernel/drivers/vfio/pci/vfio-pci.ko']);
  const r = await cli(['bind', '00:03.0', '--variant', 'mlx5_vfio_pci', '--dry-run', '--json'], root);
  assert.equal(r.code, 4, r.stdout);
  const a = r.json().actions[0];
  assert.equal(a.status, 'refused');
  assert.equal(a.code, 'module-missing');
  assert.match(a.reason, /not installed/);
  // auto skips it and picks vfio-pci, which exists.
  const auto = await cli(['bind', '00:03.0', '--dry-run', '--json'], root);
  assert.equal(auto.code, 0, auto.stdout);
  assert.equal(auto.json().actions[0].to, 'vfio-pci');
});

test('a device without a modalias file still gets its candidates, from the id files', async (t) => {
  const root = setup(t);
  fs.rmSync(path.join(deviceDir(root, SPEC, '0000:00:03.0'), 'modalias'));
  const r = await cli(['variants', '00:03.0', '--json'], root);
  assert.equal(r.code, 0, r.stderr);
  const d = r.json().devices[0];
  assert.equal(d.modalias, null);
  assert.equal(d.matchedModalias, 'pci:v000015B3d0000101Esv000015B3sd00000001bc02sc00i00');
  assert.deepEqual(d.candidates.map((c: { module: string }) => c.module), ['mlx5_vfio_pci', 'mlx5_gone', 'vfio_pci']);
  assert.equal(d.chosen, 'mlx5_vfio_pci');
  assert.match(d.note, /no modalias file/);
  const b = await cli(['bind', '00:03.0', '--dry-run', '--json'], root);
  assert.equal(b.json().actions[0].to, 'mlx5_vfio_pci');
});
