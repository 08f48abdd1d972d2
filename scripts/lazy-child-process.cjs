'use strict';
// Stands in for node:child_process inside commander, which requires it on load for
// executable subcommands (vfioctl has none): loading it costs ~2.5 ms of every start-up.
// The real module is loaded on first use.
let childProcess;
module.exports = new Proxy({}, { get: (_, key) => (childProcess ??= require('node:child_process'))[key] });
