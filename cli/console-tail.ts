// Watches a console's output for the Linux panic banner and keeps the last lines, so a run
// that ends in a kernel panic can say so and show what led to it even when no terminal was
// attached (--no-stdio).
const PANIC_BANNER = 'Kernel panic - not syncing';
const KEEP_LINES = 25;

export class ConsoleTail {
  private lines: string[] = [];
  private partial = '';
  private readonly decoder = new TextDecoder();
  private panicLine: string | undefined;

  push(bytes: Uint8Array): void {
    const text = this.partial + this.decoder.decode(bytes, { stream: true });
    const parts = text.split(/\r?\n/);
    this.partial = parts.pop()!;
    for (const line of parts) this.addLine(line);
    if (this.partial.length > 4096) {
      this.addLine(this.partial);
      this.partial = '';
    }
  }

  /** The panic line, once seen; the banner's line may still be unfinished when the guest stops. */
  get panic(): string | undefined {
    return this.panicLine ?? (this.partial.includes(PANIC_BANNER) ? this.partial.trim() : undefined);
  }

  /** The last lines of output, the unfinished one included. */
  tail(): string[] {
    return this.partial ? [...this.lines, this.partial] : [...this.lines];
  }

  private addLine(line: string): void {
    const clean = line.replace(/\r/g, '');
    if (this.panicLine === undefined && clean.includes(PANIC_BANNER)) this.panicLine = clean.trim();
    this.lines.push(clean);
    if (this.lines.length > KEEP_LINES) this.lines.shift();
  }
}
