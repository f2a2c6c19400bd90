// Entry point of every tsvmm worker thread: installs the TypeScript loader, then imports the
// real worker module (a .ts file) named by the parent. Workers do not inherit the loader.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.tsvmmModule);
