import { defineConfig } from 'vitest/config';

// Tests drive real VMs, processes and browsers: generous timeouts, and files run one at a time
// because a 2-core host shared by KVM guests, kernel builds and interpreters is easily oversubscribed.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'devices/**/*.test.ts', 'web/**/*.test.ts', 'hypervisors/**/*.test.ts', 'vmm/**/*.test.ts', 'firmware/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    fileParallelism: false,
    reporters: ['default'],
  },
});
