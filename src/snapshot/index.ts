export { takeSnapshot } from './take.js';
export type { SnapshotStats } from './copy.js';
