// The image build's host checks, against the real dpkg: what is missing is found, and a user
// who is not root is told the exact commands to run (exit code 2) instead of a failed build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { expect, test } from 'vitest';
import { missingPackages } from '../../firmware/images/packages.ts';
import { NOBODY, REPO as repo, nobodySkipReason } from '../support/as-nobody.ts';

const hasDpkg = existsSync('/usr/bin/dpkg-query');
const nobodySkip = nobodySkipReason();
const nobodyCanRead = nobodySkip === undefined;
if (!hasDpkg) console.warn('packages.test: no dpkg-query (not a Debian host): skipping');
if (nobodySkip) console.warn(`packages.test: skipping the non-root check: ${nobodySkip}`);

test.skipIf(!hasDpkg)('missingPackages finds exactly the packages dpkg does not have installed', async () => {
  expect(await missingPackages(['dpkg', 'tsvmm-no-such-package', 'coreutils'])).toEqual(['tsvmm-no-such-package']);
});

test.skipIf(!hasDpkg || !nobodyCanRead)('not root: the error names the missing packages and the exact command, exit code 2', () => {
  const script = `
    import { ensurePackages } from './firmware/images/packages.ts';
    try {
      await ensurePackages({ log: '/dev/null', debianArchs: ['amd64'], info() {} }, ['dpkg', 'tsvmm-no-such-package']);
      console.log('no error');
    } catch (e) { console.log(JSON.stringify({ exitCode: e.exitCode, message: e.message })); }`;
  // Run as the unprivileged user "nobody" (uid 65534): the real non-root path, no flag to fake it.
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repo, uid: NOBODY, gid: NOBODY, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/tmp' },
  });
  expect(r.status, r.stderr).toBe(0);
  const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  expect(result.exitCode).toBe(2);
  expect(result.message).toContain('the Debian packages tsvmm-no-such-package');
  expect(result.message).toContain('sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tsvmm-no-such-package');
  expect(result.message).not.toMatch(/install[^\n]* dpkg/);
});
