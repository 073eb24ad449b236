import type { Pod, PodEvent } from './types.ts';

/**
 * Pod time. Everything the generator made up to `now` is visible; moving the clock releases the events in
 * between, in order, to whoever listens (the feeds). It never goes back.
 */
export class PodClock {
  #now: number;
  #next = 0;

  constructor(
    private readonly pod: Pod,
    start: number,
    private readonly onRelease: (events: PodEvent[]) => void,
  ) {
    this.#now = start;
    while (this.#next < pod.events.length && (pod.events[this.#next] as PodEvent).timestamp <= start) this.#next++;
  }

  now(): number {
    return this.#now;
  }

  advanceTo(ts: number): void {
    if (!(ts > this.#now)) return;
    this.#now = ts;
    const from = this.#next;
    const events = this.pod.events;
    while (this.#next < events.length && (events[this.#next] as PodEvent).timestamp <= ts) this.#next++;
    if (this.#next > from) this.onRelease(events.slice(from, this.#next));
  }
}
