import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bdfParts, busOf, compareBdf, devfnOf, isBdf, parseBdf, slotOf } from '../../src/model/address.js';

test('parseBdf: full, short (domain 0000) and upper-case addresses', () => {
  assert.equal(parseBdf('0000:01:00.0'), '0000:01:00.0');
  assert.equal(parseBdf('01:00.0'), '0000:01:00.0');
  assert.equal(parseBdf('0000:0A:1F.7'), '0000:0a:1f.7');
  assert.equal(parseBdf('  02:00.1\n'), '0000:02:00.1');
  assert.equal(parseBdf('0001:00:02.0'), '0001:00:02.0');
});

test('parseBdf: wide domains (Intel VMD uses 10000 and up) keep their width', () => {
  assert.equal(parseBdf('10000:e1:00.0'), '10000:e1:00.0');
  assert.equal(parseBdf('10001:01:00.0'), '10001:01:00.0');
  assert.equal(isBdf('10000:e1:00.0'), true);
  assert.deepEqual(bdfParts('10000:e1:00.0'), { domain: 0x10000, bus: 0xe1, device: 0, fn: 0 });
  assert.equal(busOf('10000:e1:00.0'), '10000:e1');
  assert.equal(slotOf('10000:e1:00.3'), '10000:e1:00');
});

test('parseBdf: bad input is undefined, never a guess', () => {
  for (const bad of ['', '1:00.0', '0000:1:00.0', '01:00', '01:00.8', '01:20.0', 'zz:00.0', '0000:01:00.0.1', '000:01:00.0', '123456789:00:00.0', 'eth0', '01-00.0', '0000:01:00:0']) {
    assert.equal(parseBdf(bad), undefined, JSON.stringify(bad));
  }
  assert.equal(isBdf('01:00.0'), false, 'isBdf accepts only the canonical full form');
  assert.throws(() => bdfParts('01:00.0'), /not a canonical PCI address/);
});

test('busOf, slotOf, devfnOf', () => {
  assert.equal(busOf('0000:3b:00.1'), '0000:3b');
  assert.equal(slotOf('0000:3b:00.1'), '0000:3b:00');
  assert.equal(devfnOf('0000:00:1f.3'), (0x1f << 3) | 3);
  assert.equal(devfnOf('0000:00:00.0'), 0);
});

test('compareBdf orders by domain, bus, device, function, also across domain widths', () => {
  const list = ['10000:00:00.0', '0000:0a:00.0', '0000:01:00.1', '0001:00:00.0', '0000:01:00.0', '0000:00:1f.7'];
  assert.deepEqual([...list].sort(compareBdf), ['0000:00:1f.7', '0000:01:00.0', '0000:01:00.1', '0000:0a:00.0', '0001:00:00.0', '10000:00:00.0']);
  assert.equal(compareBdf('0000:01:00.0', '0000:01:00.0'), 0);
});
