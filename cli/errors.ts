// Errors that end a tsvmm command with a message for people and a chosen exit code.
// Exit codes: 0 the guest finished (power-off or reset); 1 the guest or the VMM failed at run
// time (kernel panic, emulation failure); 2 the command line or its inputs are wrong.

export class UsageError extends Error {
  readonly exitCode = 2;
}

/** Anything with an exitCode and a message is reported as-is by the CLI (LoaderError too). */
export interface ExitCodeError {
  message: string;
  exitCode: number;
}

export function isExitCodeError(e: unknown): e is ExitCodeError {
  return e instanceof Error && typeof (e as Partial<ExitCodeError>).exitCode === 'number';
}
