// The probe's verdicts for people who cannot use KVM: a missing device, and /dev/kvm without
// permission — the latter for real, by probing from a child process running as `nobody`.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { expect, test } from 'vitest';
import { probeKvm } from '../../hypervisors/kvm/probe.ts';
import type { ProbeResult } from '../../hypervisors/kvm/probe.ts';
import { VMM_MODULE_PATH } from '../../native/vmm.ts';
import { NOBODY, REPO as repo, nobodySkipReason } from '../support/as-nobody.ts';


function permissionSkipReason(): string | undefined {
  if (!existsSync(VMM_MODULE_PATH)) return 'the native VMM module is not built';
  if (!existsSync('/dev/kvm')) return 'there is no /dev/kvm';
  if ((statSync('/dev/kvm').mode & 0o006) !== 0) return '/dev/kvm is open to everyone here';
  return nobodySkipReason();
}

const permissionSkip = permissionSkipReason();
if (permissionSkip) console.warn(`probe permission test skipped: ${permissionSkip}`);

test.skipIf(!existsSync(VMM_MODULE_PATH))('a missing device is explained, not thrown', () => {
  const p = probeKvm({ path: '/nonexistent/kvm' });
  expect(p).toMatchObject({ available: false, nativeKernelMode: false });
  expect(p.reason).toMatch(/^\/nonexistent\/kvm does not exist: this host offers no KVM/);
});

test.skipIf(permissionSkip)('no permission on /dev/kvm: the reason says how to get it', () => {
  const script = "import('./hypervisors/kvm/probe.ts').then((m) => process.stdout.write(JSON.stringify(m.probeKvm())))";
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
    cwd: repo, uid: NOBODY, gid: NOBODY, encoding: 'utf8', env: { ...process.env, HOME: '/tmp' }, timeout: 60_000,
  });
  expect(r.status, r.stderr).toBe(0);
  const p = JSON.parse(r.stdout) as ProbeResult;
  expect(p).toMatchObject({ available: false, nativeKernelMode: false });
  expect(p.reason).toBe("no permission to open /dev/kvm: run as root or add your user to the 'kvm' group: sudo usermod -aG kvm $USER (then log in again)");
});
