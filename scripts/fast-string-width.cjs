'use strict';
// string-width for cli-table3 inside vfioctl's bundle (scripts/bundle.mjs). string-width 4
// builds ansi-regex's and emoji-regex's large regular expressions anew on every call, and
// cli-table3 measures each cell several times: on a 4,096-function host that was most of the
// time `groups` took on a terminal. Printable ASCII (every cell vfioctl draws, apart from
// pci.ids names with other characters) is one column a character; anything else goes to
// the real string-width, which is exact.
const real = require('string-width/index.js');

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

module.exports = function stringWidth(s) {
  if (typeof s !== 'string' || s.length === 0) return 0;
  const plain = s.indexOf('\u001b') < 0 ? s : s.replace(ANSI, '');
  return PRINTABLE_ASCII.test(plain) ? plain.length : real(s);
};
module.exports.default = module.exports;
