// Tests that check what an unprivileged user meets run a child process as user `nobody`. That
// needs root, and a checkout `nobody` can read: a clone under a private directory (mktemp -d,
// /root) is not, and then such tests skip and say why.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const NOBODY = 65534;
export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export function nobodySkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root, so it cannot run a child process as user nobody';
  // Reading a file needs search permission on every directory above it.
  const readable = spawnSync('/usr/bin/test', ['-r', `${REPO}node_modules/tsx/package.json`, '-a', '-r', `${REPO}package.json`], {
    uid: NOBODY, gid: NOBODY,
  }).status === 0;
  return readable ? undefined : `user nobody cannot read the checkout at ${REPO} (it is under a private directory)`;
}
