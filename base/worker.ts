// Starts a worker thread on a TypeScript module, through a bootstrap that installs the loader.
import { Worker, type WorkerOptions } from 'node:worker_threads';

const bootstrap = new URL('./ts-worker-bootstrap.js', import.meta.url);

/** `options.workerData` reaches the worker as `workerData.data`. */
export function startTsWorker(module: URL, options: WorkerOptions = {}): Worker {
  return new Worker(bootstrap, { ...options, workerData: { tsvmmModule: module.href, data: options.workerData } });
}
