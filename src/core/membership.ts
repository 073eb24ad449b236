import type { Membership, MembershipChange, Person } from './types.ts';

interface Point {
  ts: number;
  kind: 'join' | 'leave';
}

/**
 * Who was in a conversation at a given time (symphony-api.md §8: "participants per message = stream members at
 * the message timestamp"). A member is in from a join (inclusive) until a leave (exclusive).
 *
 * The REST membership lists give each member's last `joinDate` and, for rooms, past members, but no leave date
 * (spec `MemberInfo`); exact leaves come only from USERLEFTROOM events. A past member whose leave was never seen
 * is kept in from their join onwards: an archive that files a copy too many can be explained, one that misses a
 * custodian's message cannot. Such members are listed in `unknownLeaves` so the run log says so.
 */
export class MembershipTimeline {
  readonly #people = new Map<string, Person>();
  readonly #points = new Map<string, Point[]>();
  /** Members with no time information: in for the whole life of the conversation. */
  readonly #always = new Set<string>();
  readonly unknownLeaves: Person[] = [];

  constructor(members: readonly Membership[], changes: readonly MembershipChange[] = []) {
    for (const m of members) {
      this.#people.set(m.person.userId, m.person);
      if (m.joinedAt === undefined) this.#always.add(m.person.userId);
      else this.#add(m.person.userId, { ts: m.joinedAt, kind: 'join' });
    }
    for (const c of changes) this.#add(c.userId, { ts: c.ts, kind: c.kind });
    for (const m of members) {
      const last = this.#points.get(m.person.userId)?.at(-1);
      if (!m.current && last?.kind === 'join') this.unknownLeaves.push(m.person);
    }
  }

  #add(userId: string, point: Point): void {
    const points = this.#points.get(userId) ?? [];
    if (points.some((p) => p.ts === point.ts && p.kind === point.kind)) return;
    points.push(point);
    // A join and a leave in the same millisecond: the join first, so the user is in until the leave.
    points.sort((a, b) => a.ts - b.ts || (a.kind === b.kind ? 0 : a.kind === 'join' ? -1 : 1));
    this.#points.set(userId, points);
  }

  /** Records a change seen on a real-time feed, with the person when the event names them. */
  apply(change: MembershipChange, person?: Person): void {
    if (person && !this.#people.has(change.userId)) this.#people.set(change.userId, person);
    this.#always.delete(change.userId);
    this.#add(change.userId, { ts: change.ts, kind: change.kind });
  }

  person(userId: string): Person | undefined {
    return this.#people.get(userId);
  }

  has(userId: string): boolean {
    return this.#people.has(userId);
  }

  /** Everyone this timeline knows, in or out. */
  people(): Person[] {
    return [...this.#people.values()];
  }

  #isIn(userId: string, ts: number): boolean {
    if (this.#always.has(userId)) return true;
    const points = this.#points.get(userId);
    if (!points?.length) return false;
    let state = points[0]!.kind === 'leave';
    for (const p of points) {
      if (p.ts > ts) break;
      state = p.kind === 'join';
    }
    return state;
  }

  /** Members at `ts`, in the order they became known. */
  at(ts: number): Person[] {
    return [...this.#people.values()].filter((p) => this.#isIn(p.userId, ts));
  }
}
