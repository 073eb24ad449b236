import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../../src/core/logger.ts';
import { createImapWriter } from '../../../src/deliver/imap/index.ts';
import { startCyrus } from '../../helpers/cyrus.ts';
import { startDovecot } from '../../helpers/dovecot.ts';
import { describeWriterContract } from '../contract.ts';
import { imapConfig, secretFile } from './fixtures.ts';

const USERS = ['alice@bank.example', 'bob@bank.example', 'carol@bank.example'];

describeWriterContract('IMAP into Dovecot (master user)', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imap-contract-dovecot-'));
  await chmod(dir, 0o755);
  const server = await startDovecot({ mailRoot: path.join(dir, 'mail'), users: USERS, masterUser: 'archiver' });
  const passwordFile = await secretFile(dir, 'master.pass', server.master!.password);
  const config = imapConfig(server, { method: 'master', masterUser: 'archiver', passwordFile });
  return {
    open: () => createImapWriter(config, { logger: silentLogger() }),
    mailboxes: USERS,
    async close() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describeWriterContract('IMAP into Cyrus (admin with SASL authorization identity)', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imap-contract-cyrus-'));
  const server = await startCyrus({ users: USERS, separator: '/' });
  const passwordFile = await secretFile(dir, 'admin.pass', server.password);
  const config = imapConfig(server, { method: 'authzid', adminUser: server.admin, passwordFile });
  return {
    open: () => createImapWriter(config, { logger: silentLogger() }),
    mailboxes: USERS,
    async close() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
