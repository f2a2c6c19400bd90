// A token bucket bounding how many input bytes one viewer may send to the guest: a paste of a
// few kilobytes goes through at once, a flood is refused instead of piling up in the VMM.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(ratePerSecond > 0) || !(burst > 0)) throw new RangeError('token bucket needs a positive rate and burst');
    this.tokens = burst;
    this.last = now();
  }

  /** Takes `n` tokens if all are available; otherwise takes none and returns false. */
  take(n: number): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.ratePerSecond);
    this.last = t;
    if (n > this.tokens) return false;
    this.tokens -= n;
    return true;
  }
}
