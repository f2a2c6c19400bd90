// Runs the KVM probe off the main thread: it executes a tiny guest, and KVM_RUN never runs on
// the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { probeKvm } from './probe.ts';

parentPort!.postMessage(probeKvm({ path: (workerData as { data: string }).data }));
