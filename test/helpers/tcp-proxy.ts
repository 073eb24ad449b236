import net from 'node:net';

/** A one-shot fault: fires on the first connection whose traffic matches, then disarms. */
export type ProxyFault =
  | {
      /**
       * Cuts the connection once the client has sent `afterBytes` more bytes following a match of `trigger` in its
       * stream (e.g. `/APPEND /` then 1000 bytes: in the middle of the message literal). Bytes past the cut point
       * never reach the server.
       */
      kind: 'cut-client-to-server';
      trigger: RegExp;
      afterBytes: number;
    }
  | {
      /**
       * Cuts the connection when the server's stream matches `trigger` (e.g. the tagged `OK [APPENDUID`), without
       * forwarding the matching line: the server has done the work, the client never hears of it.
       */
      kind: 'cut-server-to-client';
      trigger: RegExp;
    };

export interface TcpProxy {
  host: '127.0.0.1';
  port: number;
  /** Delay added to every chunk, both directions (order is kept). */
  latencyMs: number;
  /** Arms a fault; resolves when it has fired. */
  arm(fault: ProxyFault): Promise<void>;
  /** Number of client connections accepted so far. */
  readonly connections: number;
  /** Drops every open connection now (both sides). */
  dropAll(): void;
  close(): Promise<void>;
}

/** How much recent traffic a trigger is matched against, so a match split across chunks is still seen. */
const WINDOW = 4096;

interface Armed {
  fault: ProxyFault;
  fired: () => void;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `target`, for fault injection in IMAP tests: latency, a cut in the middle of
 * a client's APPEND literal, or a cut right after the server's tagged OK (the "unknown outcome" of destinations.md
 * §2.1). The IMAP traffic must be cleartext (no TLS, no COMPRESS) for triggers to match.
 */
export async function startTcpProxy(target: { host: string; port: number }, latencyMs = 0): Promise<TcpProxy> {
  let armed: Armed | undefined;
  let connections = 0;
  const open = new Set<net.Socket>();

  const server = net.createServer((client) => {
    connections += 1;
    const upstream = net.connect({ host: target.host, port: target.port });
    open.add(client);
    open.add(upstream);
    let dead = false;
    const kill = () => {
      if (dead) return;
      dead = true;
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', kill);
      s.on('close', () => {
        open.delete(s);
        kill();
      });
    }

    // Per direction: a tail of recent text for trigger matching, and an ordered delay queue.
    const pipe = (from: net.Socket, to: net.Socket, direction: 'c2s' | 's2c') => {
      let tail = '';
      let countdown: number | undefined;
      let chain = Promise.resolve();
      const forward = (chunk: Buffer) => {
        chain = chain.then(async () => {
          if (proxy.latencyMs > 0) await new Promise((r) => setTimeout(r, proxy.latencyMs));
          if (!dead) to.write(chunk);
        });
      };
      const cutAfter = (chunk: Buffer) => {
        chain = chain.then(async () => {
          if (proxy.latencyMs > 0) await new Promise((r) => setTimeout(r, proxy.latencyMs));
          if (!dead && chunk.length > 0) to.write(chunk);
          // Let the written bytes leave before the reset.
          await new Promise((r) => setTimeout(r, 20));
          kill();
        });
      };
      from.on('data', (chunk: Buffer) => {
        if (dead) return;
        const fault = armed?.fault;
        if (countdown !== undefined) {
          if (chunk.length >= countdown) {
            const keep = chunk.subarray(0, countdown);
            countdown = undefined;
            const fired = armed?.fired;
            armed = undefined;
            cutAfter(keep);
            fired?.();
            return;
          }
          countdown -= chunk.length;
          forward(chunk);
          return;
        }
        if (fault && direction === (fault.kind === 'cut-client-to-server' ? 'c2s' : 's2c')) {
          const text = tail + chunk.toString('latin1');
          const m = fault.trigger.exec(text);
          if (m) {
            // Offset of the match end within this chunk.
            const endInChunk = m.index + m[0].length - tail.length;
            if (fault.kind === 'cut-server-to-client') {
              const lineStart = Math.max(0, text.lastIndexOf('\n', m.index) + 1 - tail.length);
              const fired = armed?.fired;
              armed = undefined;
              cutAfter(chunk.subarray(0, lineStart));
              fired?.();
              return;
            }
            const after = chunk.length - Math.max(0, endInChunk);
            if (after >= fault.afterBytes) {
              const fired = armed?.fired;
              armed = undefined;
              cutAfter(chunk.subarray(0, Math.max(0, endInChunk) + fault.afterBytes));
              fired?.();
              return;
            }
            countdown = fault.afterBytes - after;
            forward(chunk);
            return;
          }
          tail = text.slice(-WINDOW);
        }
        forward(chunk);
      });
    };
    pipe(client, upstream, 'c2s');
    pipe(upstream, client, 's2c');
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  const proxy: TcpProxy = {
    host: '127.0.0.1',
    port,
    latencyMs,
    get connections() {
      return connections;
    },
    arm(fault: ProxyFault): Promise<void> {
      return new Promise((resolve) => {
        armed = { fault, fired: resolve };
      });
    },
    dropAll() {
      for (const s of open) s.destroy();
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
