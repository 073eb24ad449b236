import type { Logger } from '../../core/logger.ts';
import type { ImapDestinationConfig } from './config.ts';
import { closeConnection, isUsable, openConnection, type ImapConnection, type LoginIdentity } from './connection.ts';

interface Waiter {
  identity: LoginIdentity;
  resolve(conn: ImapConnection): void;
  reject(err: unknown): void;
}

/**
 * Connections to one server, at most `maxConnections` open at once across all identities. Each connection is logged
 * in as one identity (one mailbox's user, or the master user acting for it), so a free slot held by an idle
 * connection of another mailbox is reclaimed by logging that connection out. Idle connections are logged out after
 * `idleTimeoutMs`: servers drop idle sessions anyway (RFC 9051 §5.4 autologout, at least 30 minutes).
 */
export class ConnectionPool {
  readonly #config: ImapDestinationConfig;
  readonly #log: Logger;
  /** Open or opening connections, idle or not. */
  #total = 0;
  /** Idle connections, least recently used first. */
  #idle: ImapConnection[] = [];
  #waiters: Waiter[] = [];
  #closing: Promise<void>[] = [];
  #closed = false;

  constructor(config: ImapDestinationConfig, log: Logger) {
    this.#config = config;
    this.#log = log;
  }

  async acquire(identity: LoginIdentity): Promise<ImapConnection> {
    if (this.#closed) throw new Error('connection pool is closed');
    this.#dropDeadIdle();
    const i = this.#idle.findIndex((c) => c.identity.key === identity.key);
    if (i >= 0) {
      const [conn] = this.#idle.splice(i, 1);
      if (conn) {
        if (conn.idleTimer) clearTimeout(conn.idleTimer);
        return conn;
      }
    }
    if (this.#total < this.#config.maxConnections) return this.#open(identity);
    const victim = this.#idle.shift();
    if (victim) {
      // Reuse the slot of another identity's idle connection.
      this.#total -= 1;
      this.#retire(victim);
      return this.#open(identity);
    }
    return new Promise<ImapConnection>((resolve, reject) => this.#waiters.push({ identity, resolve, reject }));
  }

  /** Returns a connection; a broken or unwanted one is closed and its slot passed on. */
  release(conn: ImapConnection, healthy = true): void {
    if (!healthy || !isUsable(conn) || this.#closed) {
      this.#total -= 1;
      this.#retire(conn);
      this.#pump();
      return;
    }
    const same = this.#waiters.findIndex((w) => w.identity.key === conn.identity.key);
    if (same >= 0) {
      const [waiter] = this.#waiters.splice(same, 1);
      waiter?.resolve(conn);
      return;
    }
    if (this.#waiters.length > 0) {
      this.#total -= 1;
      this.#retire(conn);
      this.#pump();
      return;
    }
    conn.idleTimer = setTimeout(() => {
      const i = this.#idle.indexOf(conn);
      if (i < 0) return;
      this.#idle.splice(i, 1);
      this.#total -= 1;
      this.#retire(conn);
      this.#pump();
    }, this.#config.idleTimeoutMs);
    conn.idleTimer.unref();
    this.#idle.push(conn);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(new Error('connection pool is closed'));
    for (const conn of this.#idle.splice(0)) {
      this.#total -= 1;
      this.#retire(conn);
    }
    await Promise.allSettled(this.#closing);
  }

  #open(identity: LoginIdentity): Promise<ImapConnection> {
    this.#total += 1;
    return openConnection(this.#config, identity, this.#log).catch((err: unknown) => {
      this.#total -= 1;
      this.#pump();
      throw err;
    });
  }

  #pump(): void {
    while (!this.#closed && this.#total < this.#config.maxConnections && this.#waiters.length > 0) {
      const waiter = this.#waiters.shift();
      if (!waiter) break;
      this.#open(waiter.identity).then(waiter.resolve, waiter.reject);
    }
  }

  #dropDeadIdle(): void {
    for (const conn of [...this.#idle]) {
      if (isUsable(conn)) continue;
      this.#idle.splice(this.#idle.indexOf(conn), 1);
      this.#total -= 1;
      this.#retire(conn);
    }
  }

  #retire(conn: ImapConnection): void {
    const done = closeConnection(conn).catch(() => undefined);
    this.#closing.push(done);
    void done.then(() => {
      const i = this.#closing.indexOf(done);
      if (i >= 0) this.#closing.splice(i, 1);
    });
  }
}
