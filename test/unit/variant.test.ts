import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aliasMatches, moduleMatches, parseVfioAliases, rankAliases, rankWithFallback, vfioModalias } from '../../src/plan/variant.js';

// Real alias lines (kernel.md §4.2, §4.5, §11 (c)/(d)) with some non-vfio noise around them.
const MODULES_ALIAS = `# Aliases extracted from modules themselves.
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci
alias vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_vfio_pci
alias pci:v000015B3d0000101Esv*sd*bc*sc*i* mlx5_core
alias vfio_pci:v000019E5d0000A256sv*sd*bc*sc*i* hisi_acc_vfio_pci
alias vfio_pci:v000019E5d0000A259sv*sd*bc*sc*i* hisi_acc_vfio_pci
alias vfio_pci:v000019E5d0000A251sv*sd*bc*sc*i* hisi_acc_vfio_pci
alias vfio_pci:v000010DEd00002342sv*sd*bc*sc*i* nvgrace_gpu_vfio_pci
alias vfio_pci:v000010DEd00002345sv*sd*bc*sc*i* nvgrace_gpu_vfio_pci
alias vfio_pci:v00001AF4d00001041sv*sd*bc*sc*i* virtio_vfio_pci
alias vfio_pci:v00008086d00004941sv*sd*bc*sc*i* qat_vfio_pci
alias vfio_pci:v00008086d00004943sv*sd*bc*sc*i* qat_vfio_pci
alias vfio_pci:v00008086d00004945sv*sd*bc*sc*i* qat_vfio_pci
alias vfio_pci:v00001DD8d00001003sv*sd*bc*sc*i* pds_vfio_pci
alias vfio_pci:v00008086d000010D3sv*sd*bc*sc*i* vfio_pci_lab
alias vfio_pci:v00008086d0000E220sv*sd*bc*sc*i* xe_vfio_pci
`;
const aliases = parseVfioAliases(MODULES_ALIAS);
const ma = (v: string, d: string, sv = v, sd = '0000', cls = '020000') =>
  `pci:v0000${v}d0000${d}sv0000${sv}sd0000${sd}bc${cls.slice(0, 2)}sc${cls.slice(2, 4)}i${cls.slice(4)}`.toUpperCase().replace(/^PCI:V/, 'pci:v').replace(/D0000/, 'd0000').replace(/SV/, 'sv').replace(/SD/, 'sd').replace(/BC/, 'bc').replace(/SC/, 'sc').replace(/I(..)$/, 'i$1');

test('parse: only vfio_pci aliases, in file order, with wildcard counts', () => {
  assert.equal(aliases.length, 14);
  assert.deepEqual(aliases[0], { pattern: 'vfio_pci:v*d*sv*sd*bc*sc*i*', module: 'vfio_pci', wildcards: 7, order: 0 });
  assert.equal(aliases[1]!.module, 'mlx5_vfio_pci');
  assert.equal(aliases[1]!.wildcards, 5);
  assert.ok(aliases.every((a) => a.pattern.startsWith('vfio_pci:')));
});

test('modalias helpers', () => {
  assert.equal(vfioModalias('pci:v000015B3d0000101Esv000015B3sd00000020bc02sc00i00'), 'vfio_pci:v000015B3d0000101Esv000015B3sd00000020bc02sc00i00');
  assert.equal(vfioModalias(null), null);
  assert.equal(vfioModalias('usb:v1234'), null);
  assert.ok(aliasMatches('vfio_pci:v*d*sv*sd*bc*sc*i*', 'vfio_pci:v00001234d00005678sv00000000sd00000000bc02sc00i00'));
  assert.ok(!aliasMatches('vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*', 'vfio_pci:v000015B3d0000101Fsv000015B3sd00000020bc02sc00i00'));
  // Case matters as in kmod's fnmatch: modalias hex is upper case, so is the alias.
  assert.ok(!aliasMatches('vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*', 'vfio_pci:v000015b3d0000101esv000015b3sd00000020bc02sc00i00'));
});

const cases: [string, string, string, string[]][] = [
  ['mlx5 ConnectX VF', '15B3', '101E', ['mlx5_vfio_pci', 'vfio_pci']],
  ['hisi_acc SEC VF', '19E5', 'A256', ['hisi_acc_vfio_pci', 'vfio_pci']],
  ['hisi_acc HPRE VF', '19E5', 'A259', ['hisi_acc_vfio_pci', 'vfio_pci']],
  ['hisi_acc ZIP VF', '19E5', 'A251', ['hisi_acc_vfio_pci', 'vfio_pci']],
  ['nvgrace 2342', '10DE', '2342', ['nvgrace_gpu_vfio_pci', 'vfio_pci']],
  ['nvgrace 2345', '10DE', '2345', ['nvgrace_gpu_vfio_pci', 'vfio_pci']],
  ['virtio-net modern', '1AF4', '1041', ['virtio_vfio_pci', 'vfio_pci']],
  ['qat 4941', '8086', '4941', ['qat_vfio_pci', 'vfio_pci']],
  ['pds', '1DD8', '1003', ['pds_vfio_pci', 'vfio_pci']],
  ['no variant (Intel 82540EM)', '8086', '100E', ['vfio_pci']],
  ['virtio-blk is not covered by virtio_vfio_pci', '1AF4', '1042', ['vfio_pci']],
];
for (const [name, v, d, want] of cases) {
  test(`rank: ${name}`, () => {
    const ranked = rankAliases(aliases, ma(v, d));
    assert.deepEqual(ranked.map((a) => a.module), want);
    assert.equal(ranked[ranked.length - 1]!.module, 'vfio_pci', 'the catch-all is last');
  });
}

test('rank: fewest wildcards beats file order', () => {
  const text = `alias vfio_pci:v000015B3d*sv*sd*bc*sc*i* broad_vfio\nalias vfio_pci:v000015B3d0000101Esv000015B3sd*bc*sc*i* narrow_vfio\n` + MODULES_ALIAS;
  const ranked = rankAliases(parseVfioAliases(text), 'pci:v000015B3d0000101Esv000015B3sd00000020bc02sc00i00');
  assert.deepEqual(ranked.map((a) => `${a.module}/${a.wildcards}`), ['narrow_vfio/4', 'mlx5_vfio_pci/5', 'broad_vfio/6', 'vfio_pci/7']);
});

test('rank: a tie goes to the first alias in file order', () => {
  const ranked = rankAliases(aliases, ma('8086', '10D3'));
  // Two lines with 5 wildcards would tie; here only vfio_pci_lab matches besides the catch-all,
  // so add a second one before it and after it.
  const tie = parseVfioAliases(`alias vfio_pci:v00008086d000010D3sv*sd*bc*sc*i* first_vfio\n${MODULES_ALIAS}alias vfio_pci:v00008086d000010D3sv*sd*bc*sc*i* last_vfio\n`);
  assert.deepEqual(ranked.map((a) => a.module), ['vfio_pci_lab', 'vfio_pci']);
  assert.deepEqual(rankAliases(tie, ma('8086', '10D3')).map((a) => a.module), ['first_vfio', 'vfio_pci_lab', 'last_vfio', 'vfio_pci']);
});

test('fallback: the catch-all is added when modules.alias lacks it (vfio_pci built in) or is missing', () => {
  const noCatchAll = parseVfioAliases(MODULES_ALIAS.replace(/^alias vfio_pci:v\*d\*.*$/m, ''));
  assert.deepEqual(rankWithFallback(noCatchAll, ma('15B3', '101E')).map((a) => a.module), ['mlx5_vfio_pci', 'vfio_pci']);
  assert.deepEqual(rankWithFallback([], ma('8086', '100E')).map((a) => [a.module, a.pattern]), [['vfio_pci', 'vfio_pci:v*d*sv*sd*bc*sc*i*']]);
  assert.deepEqual(rankWithFallback(aliases, null), [], 'no modalias, no candidate');
});

test('moduleMatches: the guard before writing a variant into driver_override', () => {
  assert.ok(moduleMatches(aliases, 'vfio_pci_lab', ma('8086', '10D3')));
  assert.ok(!moduleMatches(aliases, 'vfio_pci_lab', ma('1B36', '0010')), 'the NVMe case of kernel.md §11 (d)');
  assert.ok(!moduleMatches(aliases, 'mlx5_vfio_pci', ma('8086', '10D3')));
  assert.ok(moduleMatches(aliases, 'vfio_pci', ma('1B36', '0010')), 'vfio-pci takes anything');
  assert.ok(!moduleMatches(aliases, 'no_such_module', ma('8086', '10D3')));
});
