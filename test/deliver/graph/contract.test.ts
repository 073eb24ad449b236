import { describeWriterContract } from '../contract.ts';
import { harness } from './helpers.ts';

describeWriterContract('Microsoft Graph (emulator, https)', async () => {
  const h = await harness({ tls: true, users: ['alice@bank.example', 'bob@bank.example', 'carol@bank.example'] });
  return {
    open: () => h.writer(),
    mailboxes: ['alice@bank.example', 'bob@bank.example', 'carol@bank.example'],
    close: () => h.close(),
  };
});
