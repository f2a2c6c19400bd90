// The loader's one error type: bad user input (a kernel, initrd or command line tsvmm cannot
// boot). The CLI prints the message and exits with exitCode.

export class LoaderError extends Error {
  /** Bad input, like every other usage error of tsvmm. */
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'LoaderError';
  }
}
