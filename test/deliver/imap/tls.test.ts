import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isAppError } from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { createImapWriter } from '../../../src/deliver/imap/index.ts';
import { startDovecot, type DovecotServer } from '../../helpers/dovecot.ts';
import { assertExactlyOnce, imapConfig, itemsFor, readFolder, secretFile } from './fixtures.ts';

const USER = 'olga@bank.example';

describe('IMAP writer over TLS and STARTTLS (certificates always verified)', { timeout: 60_000 }, () => {
  let tmp: string;
  let server: DovecotServer;
  let passwordFile: string;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'imap-tls-'));
    await chmod(tmp, 0o755);
    server = await startDovecot({ mailRoot: path.join(tmp, 'mail'), users: [USER], tls: true });
    passwordFile = await secretFile(tmp, 'password', server.password);
  });

  after(async () => {
    await server?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const variants = [
    { security: 'tls', port: () => server.tlsPort ?? 0, folder: 'Implicit' },
    { security: 'starttls', port: () => server.port, folder: 'Upgraded' },
  ] as const;

  for (const v of variants) {
    it(`${v.security}: verifies the server with caFile, and refuses it without`, async () => {
      const base = { host: 'localhost', port: v.port() };
      const trusted = createImapWriter(
        imapConfig(
          base,
          { method: 'password', passwordFile },
          { security: v.security, caFile: server.caFile, folder: v.folder },
        ),
        { logger: silentLogger() },
      );
      const items = itemsFor(v.folder.toLowerCase(), 3);
      try {
        await trusted.verify();
        await Promise.all(items.map((item) => trusted.append(USER, item)));
      } finally {
        await trusted.close();
      }
      assertExactlyOnce(await readFolder(server, { user: USER, pass: server.password }, v.folder), items, USER);

      const untrusted = createImapWriter(
        imapConfig(base, { method: 'password', passwordFile }, { security: v.security, folder: v.folder }),
        { logger: silentLogger() },
      );
      try {
        const isTlsRefusal = (e: unknown) =>
          isAppError(e, 'ERR_SINK_IO') && !e.retryable && /TLS/.test(e.message) && /caFile/.test(e.message);
        await assert.rejects(untrusted.verify(), isTlsRefusal);
        await assert.rejects(untrusted.append(USER, items[0] ?? assert.fail()), isTlsRefusal);
      } finally {
        await untrusted.close();
      }
    });
  }

  it('checks the name in the certificate', async () => {
    // The certificate names localhost and 127.0.0.1 only.
    const writer = createImapWriter(
      imapConfig(
        { host: '127.0.0.1', port: server.tlsPort ?? 0 },
        { method: 'password', passwordFile },
        { security: 'tls', caFile: server.caFile, servername: 'imap.bank.example' },
      ),
      { logger: silentLogger() },
    );
    try {
      await assert.rejects(writer.verify(), (e: unknown) => isAppError(e, 'ERR_SINK_IO') && /TLS/.test(e.message));
    } finally {
      await writer.close();
    }
  });
});
