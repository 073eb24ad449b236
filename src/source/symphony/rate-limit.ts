import { sleep, throwIfAborted } from './retry.ts';

/** The time source of the rate limit; tests pass a fake one so the limit is checked without real waiting. */
export interface Clock {
  /** Milliseconds on a monotonic scale (reliability.md §2.1: scheduling uses a monotonic clock). */
  now(): number;
  /** Waits `ms`, rejecting with ERR_ABORTED as soon as any of the signals fires. */
  sleep(ms: number, signals: readonly (AbortSignal | undefined)[]): Promise<void>;
}

export const systemClock: Clock = { now: () => performance.now(), sleep };

/**
 * A token bucket over every request of one source, logins and retries included: it holds one second's
 * worth of requests (at least one), so a burst after a quiet spell never exceeds `requestsPerSecond`
 * and the long-run rate never exceeds it either. Symphony throttles per source IP and pod node
 * (symphony-api.md §7: 400 requests/s, then 429), which an operator sharing the pod may want to stay
 * well under. Each caller reserves the next token at once, so callers are served in call order.
 */
export class TokenBucket {
  readonly #perMs: number;
  readonly #capacity: number;
  readonly #clock: Clock;
  /** Negative while callers wait for tokens they already reserved. */
  #tokens: number;
  #updatedAt: number;

  constructor(requestsPerSecond: number, clock: Clock = systemClock) {
    this.#perMs = requestsPerSecond / 1000;
    this.#capacity = Math.max(1, requestsPerSecond);
    this.#clock = clock;
    this.#tokens = this.#capacity;
    this.#updatedAt = clock.now();
  }

  /** Resolves when the caller may send one request. */
  async take(signals: readonly (AbortSignal | undefined)[]): Promise<void> {
    for (const signal of signals) throwIfAborted(signal);
    this.#refill();
    this.#tokens -= 1;
    if (this.#tokens >= 0) return;
    try {
      await this.#clock.sleep(Math.ceil(-this.#tokens / this.#perMs), signals);
    } catch (err) {
      // A caller that gives up hands its token back: only requests actually sent count against the rate.
      this.#refill();
      this.#tokens = Math.min(this.#capacity, this.#tokens + 1);
      throw err;
    }
  }

  #refill(): void {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#updatedAt) * this.#perMs);
    this.#updatedAt = now;
  }
}
