import { AppError } from '../../core/errors.ts';

/**
 * A token bucket: `capacity` tokens, refilled continuously at `capacity / windowMs`. Outlook's per-mailbox budgets
 * (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits) are windows; a bucket of the same
 * size and period never exceeds them over any window and smooths bursts instead of hitting the wall.
 */
export class TokenBucket {
  readonly #capacity: number;
  readonly #ratePerMs: number;
  #tokens: number;
  #updated: number;

  constructor(capacity: number, windowMs: number, now: number = Date.now()) {
    this.#capacity = capacity;
    this.#ratePerMs = capacity / windowMs;
    this.#tokens = capacity;
    this.#updated = now;
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#updated) * this.#ratePerMs);
    this.#updated = now;
  }

  /** Milliseconds until `amount` tokens are there (0 = now). */
  waitFor(amount: number, now: number = Date.now()): number {
    const want = Math.min(amount, this.#capacity);
    this.#refill(now);
    return this.#tokens >= want ? 0 : Math.ceil((want - this.#tokens) / this.#ratePerMs);
  }

  take(amount: number): void {
    this.#tokens -= Math.min(amount, this.#capacity);
  }
}

function abortError(): AppError {
  return new AppError('ERR_ABORTED', 'graph request', { retryable: false });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortError());
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface MailboxLimits {
  maxInFlight: number;
  requestsPer10Minutes: number;
  uploadBytesPer5Minutes: number;
}

/**
 * Everything one mailbox's requests wait for: a semaphore of `maxInFlight` (Exchange answers the 5th concurrent
 * request with 429 MailboxConcurrency), the request and upload buckets, and a shared pause after a 429/503 so that
 * the other requests of that mailbox hold back for Retry-After too (throttling guidance: stop, wait, resume).
 */
export class MailboxLimiter {
  readonly #limits: MailboxLimits;
  readonly #requests: TokenBucket;
  readonly #uploads: TokenBucket;
  #inFlight = 0;
  #maxSeen = 0;
  readonly #waiters: (() => void)[] = [];
  #pausedUntil = 0;

  constructor(limits: MailboxLimits) {
    this.#limits = limits;
    this.#requests = new TokenBucket(limits.requestsPer10Minutes, 600_000);
    this.#uploads = new TokenBucket(limits.uploadBytesPer5Minutes, 300_000);
  }

  get maxInFlightSeen(): number {
    return this.#maxSeen;
  }

  pause(ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + ms);
  }

  /** Waits for a slot and budget; the returned function releases the slot. */
  async acquire(uploadBytes: number, signal?: AbortSignal): Promise<() => void> {
    if (this.#inFlight >= this.#limits.maxInFlight) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          const i = this.#waiters.indexOf(wake);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(abortError());
        };
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        if (signal?.aborted) return onAbort();
        this.#waiters.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } else {
      this.#inFlight += 1;
    }
    this.#maxSeen = Math.max(this.#maxSeen, this.#inFlight);
    const release = (): void => {
      const next = this.#waiters.shift();
      // The slot passes straight to the next waiter, so the count never dips and lets a newcomer overtake.
      if (next) next();
      else this.#inFlight -= 1;
    };
    try {
      for (;;) {
        const now = Date.now();
        const wait = Math.max(
          this.#pausedUntil - now,
          this.#requests.waitFor(1, now),
          uploadBytes > 0 ? this.#uploads.waitFor(uploadBytes, now) : 0,
        );
        if (wait <= 0) {
          this.#requests.take(1);
          if (uploadBytes > 0) this.#uploads.take(uploadBytes);
          break;
        }
        await sleep(wait, signal);
      }
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }
}
