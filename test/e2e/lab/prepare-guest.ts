/** Guest set-up before the scenarios: create the topology's SR-IOV VFs, if any. */
import { createVfs } from './capture-guest-lib.js';

const vfs = await createVfs();
if (vfs.length) console.log(`lab-prepare: created VFs ${vfs.join(' ')}`);
