import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../../src/core/logger.ts';
import { createMaildirWriter } from '../../../src/deliver/maildir/index.ts';
import { describeWriterContract } from '../contract.ts';

describeWriterContract('Maildir', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'maildir-contract-'));
  return {
    open: () => createMaildirWriter({ root }, { logger: silentLogger() }),
    mailboxes: ['alice@bank.example', 'bob@bank.example', 'carol@bank.example'],
    close: () => rm(root, { recursive: true, force: true }),
  };
});
