// For kick.test.ts: creates a vCPU, reports its kick token, and exits without destroying it.
import { parentPort } from 'node:worker_threads';
import { TestGuest } from '../guests/guest.ts';

const guest = new TestGuest({ mode: 'long64' });
parentPort!.postMessage(guest.vcpu.kickToken());
