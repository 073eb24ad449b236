import { Command, InvalidArgumentError } from 'commander';
import { AppError, reasonOf } from '../core/errors.ts';
import { convertCommand } from './commands/convert.ts';
import { demoCommand } from './commands/demo.ts';
import { emulatorGraphCommand, emulatorSymphonyCommand } from './commands/emulator.ts';
import { logCommand } from './commands/log.ts';
import { runCommand } from './commands/run.ts';

function int(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number');
  return n;
}

function fraction(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('must be a number from 0 to 1');
  return n;
}

/** Exit status: 0 every cycle succeeded, 1 a cycle failed or found problems it could not settle, 2 bad usage or config. */
async function main(argv: string[]): Promise<number> {
  const program = new Command('symphony-archiver')
    .description('Archive Symphony chat into mailboxes (Maildir, IMAP, Microsoft 365) for compliance retention')
    .showHelpAfterError()
    .exitOverride();
  let exitCode = 0;
  const set = (code: number) => {
    exitCode = code;
  };

  program
    .command('run')
    .description('run one archive cycle for every connector of a config file')
    .requiredOption('-c, --config <file>', 'YAML config file')
    .option('--connector <id>', 'only this connector')
    .option('--json', 'print one JSON document instead of text', false)
    .option(
      '--follow',
      'with capture: datafeed or datahose, keep following the feed after the cycle until Ctrl-C (one connector)',
      false,
    )
    .action(async (o: { config: string; connector?: string; json: boolean; follow: boolean }) =>
      set(await runCommand(o)),
    );

  program
    .command('demo')
    .description('archive a bundled Symphony emulator pod into a local Maildir')
    .option('-d, --data-dir <dir>', 'where the state, the staging area and the mail go', 'symphony-archiver-demo')
    .option('--once', 'run one cycle and exit', false)
    .option('--json', 'print one JSON document instead of text', false)
    .option('--seed <n>', 'emulator seed', int, 1)
    .option('--users <n>', 'users in the pod', int, 40)
    .option('--streams <n>', 'conversations in the pod', int, 30)
    .option('--messages <n>', 'messages in the pod', int, 1500)
    .option('--every <seconds>', 'seconds between cycles when not --once', int, 86_400)
    .action(async (o) => set(await demoCommand(o)));

  program
    .command('convert')
    .description('turn one V4Message JSON file into an .eml file')
    .argument('<message>', 'V4Message JSON, as GET /agent/v4/stream/{sid}/message returns it (one object or an array)')
    .option(
      '-m, --members <file>',
      'membership list JSON (GET /pod/v1/admin/stream/{id}/membership/list) or an array of users',
    )
    .option('-a, --attachments <dir>', 'directory holding the attachment files, by attachment name')
    .option('-o, --out <dir>', 'output directory', '.')
    .option('--message-id-domain <domain>', 'right-hand side of the Message-ID', 'symphony.invalid')
    .option('--json', 'print one JSON document instead of text', false)
    .action(async (message: string, o) => set(await convertCommand(message, o)));

  program
    .command('log')
    .description('print the import log of a run: every (message, mailbox) row and every event')
    .requiredOption('-c, --config <file>', 'YAML config file')
    .option('--connector <id>', 'connector id (default: the first one)')
    .option('--run <id>', 'run id (default: the latest)', int)
    .option('--json', 'print one JSON document instead of text', false)
    .action(async (o) => set(await logCommand(o)));

  program
    .command('emulator')
    .description('run an emulator of a service the archiver talks to')
    .command('symphony')
    .description('a Symphony pod (pod, agent, login and key manager APIs) with a generated history')
    .option('-p, --port <port>', 'port', int, 8443)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--seed <n>', 'seed of the generated pod', int, 1)
    .option('--users <n>', 'users in the pod', int, 40)
    .option('--streams <n>', 'conversations in the pod', int, 30)
    .option('--messages <n>', 'messages in the pod', int, 1500)
    .option('--bot-username <name>', 'service account the archiver logs in as', 'archiver-bot')
    .option('--bot-public-key <file>', "the bot's RSA public key (PEM); without it a key pair is generated")
    .option('--bot-private-key-out <file>', 'where a generated private key is written', 'archiver-bot.pem')
    .option('--rate-429 <fraction>', 'fraction of API calls answered 429 with Retry-After', fraction, 0)
    .option('--retry-after <seconds>', 'Retry-After of those answers', int, 1)
    .option('--rate-500 <fraction>', 'fraction of API calls answered 500', fraction, 0)
    .option('--session-expiry-every <n>', 'expire every session token after n authenticated calls', int)
    .option('--broken-attachments', 'a few attachments whose download always fails', false)
    .option('--unknown-stream-type', 'one stream reports a type the archiver does not know', false)
    .option(
      '--slow-response-rate <fraction>',
      'fraction of API calls answered only after --slow-response-ms',
      fraction,
      0,
    )
    .option('--slow-response-ms <ms>', 'delay of those answers', int, 2000)
    .option('--feed-expiry-every <n>', 'every n-th datafeed/datahose read the feed expires (400)', int)
    .option('--duplicate-event-rate <fraction>', 'fraction of feed reads after which an event comes again', fraction, 0)
    .option('--reorder-events', 'shuffle the events inside each feed batch', false)
    .option(
      '--live-start <fraction>',
      'pod time starts at this fraction of the timeline; the rest comes live',
      fraction,
    )
    .option(
      '--live-speed <x>',
      'pod time runs x times as fast as wall time (with --live-start)',
      (value: string) => {
        const n = Number(value);
        if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
        return n;
      },
      1,
    )
    .option(
      '--live-capture <kind>',
      'what the ground truth assumes the archiver reads live: datahose or datafeed',
      (value: string) => {
        if (value === 'datahose' || value === 'datafeed') return value;
        throw new InvalidArgumentError('must be datahose or datafeed');
      },
      'datahose',
    )
    .action(async (o) => set(await emulatorSymphonyCommand(o)));

  program.commands
    .find((c) => c.name() === 'emulator')!
    .command('graph')
    .description(
      'Microsoft Graph (mail folders, importMime, upload sessions) with its client-credentials token endpoint',
    )
    .option('-p, --port <port>', 'port', int, 8444)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--tls', 'serve https with a generated self-signed certificate (what @azure/identity requires)', false)
    .option(
      '--ca-out <file>',
      'where the certificate is written with --tls (give it to the writer as caFile)',
      'graph-emulator-ca.pem',
    )
    .option('--users <addresses>', 'comma-separated mailboxes that exist (default: any address)')
    .option('--mailbox-size-limit <bytes>', 'mailbox quota', int)
    .option('--max-message-size <bytes>', 'per-message limit (default 35 MB)', int)
    .option('--rate-429 <fraction>', 'fraction of Graph calls answered 429 with Retry-After', fraction, 0)
    .option('--rate-503 <fraction>', 'fraction of Graph calls answered 503 with Retry-After', fraction, 0)
    .option('--retry-after <seconds>', 'Retry-After of those answers', int, 1)
    .action(async (o) => set(await emulatorGraphCommand(o)));

  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
    if (e.code?.startsWith('commander.')) return 2;
    process.stderr.write(`symphony-archiver: ${reasonOf(err)}\n`);
    return err instanceof AppError && err.code === 'ERR_CONFIG_INVALID' ? 2 : 1;
  }
}

process.exitCode = await main(process.argv);
