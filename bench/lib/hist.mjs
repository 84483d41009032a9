/**
 * Latency histogram in microseconds with logarithmic buckets (20 per doubling, about 3.5 %
 * wide): constant memory, cheap to add to, and merged across load-generator processes by
 * adding counts.
 */
const PER_DOUBLING = 20;
const SIZE = 1 + PER_DOUBLING * 34; // up to 2^34 us (about 4.8 hours)

export class Histogram {
  constructor() {
    this.counts = new Float64Array(SIZE);
    this.n = 0;
  }

  add(us) {
    const i = us < 1 ? 0 : Math.min(SIZE - 1, 1 + Math.floor(Math.log2(us) * PER_DOUBLING));
    this.counts[i]++;
    this.n++;
  }

  /** Sparse [bucket, count] pairs, for IPC. */
  toJSON() {
    const out = [];
    for (let i = 0; i < SIZE; i++) if (this.counts[i] > 0) out.push([i, this.counts[i]]);
    return out;
  }

  reset() {
    this.counts.fill(0);
    this.n = 0;
  }

  static fromJSON(pairs) {
    const h = new Histogram();
    h.merge(pairs);
    return h;
  }

  merge(pairs) {
    for (const [i, c] of pairs) {
      this.counts[i] += c;
      this.n += c;
    }
  }

  /** The value (us) below which a fraction `q` of the samples lie: the bucket's geometric middle. */
  quantile(q) {
    if (this.n === 0) return NaN;
    const rank = q * this.n;
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i];
      if (seen >= rank && this.counts[i] > 0) return i === 0 ? 0.5 : 2 ** ((i - 1 + 0.5) / PER_DOUBLING);
    }
    return NaN;
  }
}

/** Microseconds on a clock every process on the machine shares (CLOCK_MONOTONIC). */
const offsetUs = (() => {
  const [s, ns] = process.hrtime();
  return s * 1e6 + ns / 1e3 - performance.now() * 1e3;
})();
export const monoUs = () => performance.now() * 1e3 + offsetUs;
