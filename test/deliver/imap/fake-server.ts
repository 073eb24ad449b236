import net from 'node:net';

/** What the scripted server answers to one APPEND; `undefined` stores the messages and answers OK [APPENDUID]. */
export type AppendScript = (command: string) => string | undefined;

export interface FakeImapServer {
  host: '127.0.0.1';
  port: number;
  /** Raw messages stored, in UID order. */
  messages: Buffer[];
  /** Every command line received (literals left out; AUTHENTICATE payloads left out). */
  commands: string[];
  /** SASL XOAUTH2 logins: the user and bearer token of each. */
  oauthLogins: Array<{ user: string; token: string }>;
  close(): Promise<void>;
}

/**
 * A tiny scripted IMAP server for the cases no local server produces: Exchange Online's "BAD Request is throttled",
 * `[LIMIT]`, size refusals in words, a bare `NO` on CREATE, no UIDPLUS. It speaks just enough IMAP4rev1 for imapflow
 * and the writer: LOGIN, LIST, CREATE, SUBSCRIBE, EXAMINE, UID FETCH of Message-ID headers, APPEND (also
 * MULTIAPPEND), LOGOUT. Not a general IMAP implementation.
 */
export async function startFakeImap(options: {
  capabilities?: string;
  separator?: string;
  /** Answer to CREATE when the mailbox already exists. */
  createExisting?: string;
  append?: AppendScript;
  /** Accepts an XOAUTH2 bearer token (advertise `AUTH=XOAUTH2 SASL-IR` in `capabilities`). */
  acceptToken?: (token: string) => boolean;
}): Promise<FakeImapServer> {
  const caps = options.capabilities ?? 'IMAP4rev1 UIDPLUS LITERAL+';
  const separator = options.separator ?? '/';
  const folders = new Set<string>();
  const messages: Buffer[] = [];
  const commands: string[] = [];
  const oauthLogins: Array<{ user: string; token: string }> = [];
  const uidValidity = 7;
  const sockets = new Set<net.Socket>();

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buffer = Buffer.alloc(0);
    let line = '';
    let literals: Buffer[] = [];
    let need = 0;
    const send = (s: string) => socket.write(`${s}\r\n`);
    socket.on('error', () => socket.destroy());
    send(`* OK [CAPABILITY ${caps}] fake ready`);

    const handle = (full: string, lits: Buffer[]) => {
      const m = /^(\S+) (UID )?(\S+)(.*)$/i.exec(full);
      if (!m) return send('* BAD what');
      const [, tag, , verb = '', rest = ''] = m;
      const command = verb.toUpperCase();
      commands.push(command === 'AUTHENTICATE' ? command : `${command}${rest}`);
      const args = [...rest.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((a) => a[1] ?? '');
      switch (command) {
        case 'CAPABILITY':
          send(`* CAPABILITY ${caps}`);
          return send(`${tag} OK done`);
        case 'LOGIN':
          return send(`${tag} OK [CAPABILITY ${caps}] logged in`);
        case 'AUTHENTICATE': {
          // RFC 4959 SASL-IR: `AUTHENTICATE XOAUTH2 <base64 "user=U^Aauth=Bearer T^A^A">` on one line.
          const fields = Buffer.from(rest.trim().split(' ')[1] ?? '', 'base64')
            .toString('utf8')
            .split(String.fromCharCode(1));
          const user = fields.find((f) => f.startsWith('user='))?.slice('user='.length) ?? '';
          const token = fields.find((f) => f.startsWith('auth=Bearer '))?.slice('auth=Bearer '.length) ?? '';
          oauthLogins.push({ user, token });
          if (options.acceptToken?.(token)) return send(`${tag} OK [CAPABILITY ${caps}] authenticated`);
          return send(`${tag} NO [AUTHENTICATIONFAILED] AUTHENTICATE failed.`);
        }
        case 'LIST': {
          const pattern = args[1] ?? '';
          if (pattern === '') send(`* LIST (\\Noselect) "${separator}" ""`);
          else if (pattern.toUpperCase() === 'INBOX' || folders.has(pattern))
            send(`* LIST () "${separator}" "${pattern}"`);
          return send(`${tag} OK listed`);
        }
        case 'CREATE': {
          const name = args[0] ?? '';
          if (folders.has(name)) return send(`${tag} ${options.createExisting ?? 'NO [ALREADYEXISTS] exists'}`);
          folders.add(name);
          return send(`${tag} OK created`);
        }
        case 'EXAMINE':
        case 'SELECT':
          send(`* ${messages.length} EXISTS`);
          send(`* OK [UIDVALIDITY ${uidValidity}] ok`);
          send(`* OK [UIDNEXT ${messages.length + 1}] ok`);
          return send(`${tag} OK [READ-ONLY] done`);
        case 'FETCH': {
          const range = /^ (\d+):/.exec(rest);
          const from = Number(range?.[1] ?? 1);
          messages.forEach((raw, i) => {
            const uid = i + 1;
            if (uid < from && uid !== messages.length) return;
            const id = /^message-id:.*$/im.exec(raw.toString('latin1'))?.[0] ?? '';
            const header = `${id}\r\n\r\n`;
            send(`* ${uid} FETCH (UID ${uid} BODY[HEADER.FIELDS (MESSAGE-ID)] {${Buffer.byteLength(header)}}`);
            socket.write(`${header})\r\n`);
          });
          return send(`${tag} OK fetched`);
        }
        case 'APPEND': {
          const scripted = options.append?.(`${command}${rest}`);
          if (scripted !== undefined) return send(`${tag} ${scripted}`);
          const first = messages.length + 1;
          messages.push(...lits);
          const set = lits.length === 1 ? `${first}` : `${first}:${messages.length}`;
          return send(`${tag} OK ${caps.includes('UIDPLUS') ? `[APPENDUID ${uidValidity} ${set}] ` : ''}appended`);
        }
        case 'LOGOUT':
          send('* BYE bye');
          send(`${tag} OK bye`);
          return socket.end();
        default:
          return send(`${tag} OK ${command.toLowerCase()} done`);
      }
    };

    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (need > 0) {
          if (buffer.length < need) return;
          literals.push(buffer.subarray(0, need));
          buffer = buffer.subarray(need);
          need = 0;
          continue;
        }
        const nl = buffer.indexOf('\r\n');
        if (nl < 0) return;
        const part = buffer.subarray(0, nl).toString('latin1');
        buffer = buffer.subarray(nl + 2);
        const lit = /~?\{(\d+)(\+?)\}$/.exec(part);
        if (lit) {
          line += part.slice(0, lit.index);
          need = Number(lit[1]);
          if (lit[2] !== '+') send('+ go ahead');
          if (need === 0) literals.push(Buffer.alloc(0));
          continue;
        }
        line += part;
        const full = line;
        const lits = literals;
        line = '';
        literals = [];
        handle(full, lits);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  return {
    host: '127.0.0.1',
    port: typeof address === 'object' && address !== null ? address.port : 0,
    messages,
    commands,
    oauthLogins,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
