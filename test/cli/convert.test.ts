import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { simpleParser, type AddressObject } from 'mailparser';
import { convertCommand, type ConvertCommandOptions } from '../../src/cli/commands/convert.ts';
import { isAppError } from '../../src/core/errors.ts';
import { idToken } from '../../src/core/ids.ts';
import { runCli as cli } from '../helpers/cli.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE_DIR = join(ROOT, 'test/fixtures/convert/');
const DOMAIN = 'archive.example.com';

interface Fixture {
  message: { messageId: string; timestamp: number; user: { email: string } };
  participants: { userId: string; displayName?: string; email?: string; firstName?: string; lastName?: string }[];
}
const fixture = JSON.parse(readFileSync(join(FIXTURE_DIR, 'room-plain.json'), 'utf8')) as Fixture;
const MESSAGE_ID = fixture.message.messageId;

const addresses = (a: AddressObject | AddressObject[] | undefined) =>
  (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) => o.value.map((v) => v.address)).sort();

let dir: string;
let messageFile: string;
let membersFile: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sa-convert-'));
  // The fixture wraps the V4Message with the converter's other inputs; the CLI takes the V4Message itself.
  messageFile = join(dir, 'message.json');
  writeFileSync(messageFile, JSON.stringify(fixture.message, null, 2));
  // GET /pod/v1/admin/stream/{id}/membership/list (V2MembershipList), user ids as JSON numbers.
  membersFile = join(dir, 'members.json');
  writeFileSync(
    membersFile,
    JSON.stringify({
      count: fixture.participants.length,
      skip: 0,
      limit: 100,
      members: fixture.participants.map((p, i) => ({
        user: { ...p, userId: Number(p.userId), isExternal: false },
        isOwner: i === 0,
        isCreator: i === 0,
        joinDate: 1718200000000,
      })),
    }),
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Runs `convertCommand` in-process (a spawn costs seconds), capturing what it prints. The test runner reports
 * on this process's stdout too, so only the command's own output (it names files under `dir`) is captured.
 */
async function convert(
  message: string,
  o: Partial<ConvertCommandOptions> & { out: string },
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  const mine = (chunk: unknown) =>
    typeof chunk === 'string' && (chunk.includes(dir) || chunk.startsWith('  warning: '));
  process.stdout.write = ((chunk: string, ...rest: []) =>
    mine(chunk) ? ((stdout += chunk), true) : out.call(process.stdout, chunk, ...rest)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string, ...rest: []) =>
    mine(chunk) ? ((stderr += chunk), true) : err.call(process.stderr, chunk, ...rest)) as typeof process.stderr.write;
  try {
    const code = await convertCommand(message, { messageIdDomain: 'symphony.invalid', json: false, ...o });
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

async function rejectsInput(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isAppError(e, 'ERR_INPUT_INVALID'), String(e));
    assert.match(e.message, message);
    return true;
  });
}

describe('symphony-archiver convert (spawned)', { concurrency: true }, () => {
  it('writes an .eml with the membership list as recipients, the same bytes in-process', async () => {
    const out = join(dir, 'with-members-cli');
    const r = await cli([
      'convert',
      messageFile,
      '--members',
      membersFile,
      '--out',
      out,
      '--message-id-domain',
      DOMAIN,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const file = join(out, `${idToken(MESSAGE_ID)}.eml`);
    assert.equal(r.stdout.trim(), file);
    assert.deepEqual(readdirSync(out), [`${idToken(MESSAGE_ID)}.eml`]);
    const raw = readFileSync(file);
    // The same inputs as the converter's golden file, so the CLI must produce exactly it.
    assert.ok(raw.equals(readFileSync(join(FIXTURE_DIR, 'room-plain.eml'))), raw.toString());

    const again = join(dir, 'with-members-again');
    assert.equal((await convert(messageFile, { members: membersFile, out: again, messageIdDomain: DOMAIN })).code, 0);
    assert.ok(raw.equals(readFileSync(join(again, `${idToken(MESSAGE_ID)}.eml`))), 'same input, same bytes');

    const mail = await simpleParser(raw);
    assert.deepEqual(addresses(mail.from), ['alice.martin@bank.example']);
    assert.deepEqual(addresses(mail.to), ['bob.chen@bank.example', 'user-68719476737@symphony.invalid']);
    assert.equal(mail.messageId, `<sym.${idToken(MESSAGE_ID)}@${DOMAIN}>`);
    assert.equal(mail.date?.getTime(), Math.floor(fixture.message.timestamp / 1000) * 1000);
    assert.equal(mail.headers.get('x-symphony-message-id'), MESSAGE_ID);
    assert.match(mail.text ?? '', /EUR 5y swaps opening tight/);
  });

  it('fails clearly, with a non-zero status, on malformed JSON', async () => {
    const bad = join(dir, 'broken.json');
    writeFileSync(bad, '{"messageId": "abc", ');
    const r = await cli(['convert', bad, '--out', join(dir, 'broken-out')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_INPUT_INVALID/);
    assert.match(r.stderr, /broken\.json is not JSON/);
    assert.ok(!r.stderr.includes('    at '), 'no stack trace');
    assert.equal(r.stdout, '');
  });
});

describe('convertCommand', () => {
  it('without a members file addresses the message to its author only', async () => {
    const out = join(dir, 'no-members');
    const r = await convert(messageFile, { out, json: true });
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { written: { file: string; messageId: string; warnings: string[] }[] };
    assert.equal(report.written.length, 1);
    const written = report.written[0]!;
    assert.equal(written.file, join(out, `${idToken(MESSAGE_ID)}.eml`));
    const raw = readFileSync(written.file);
    const mail = await simpleParser(raw);
    assert.deepEqual(addresses(mail.from), [fixture.message.user.email]);
    assert.deepEqual(addresses(mail.to), [fixture.message.user.email]);
    assert.equal(mail.messageId, `<sym.${idToken(MESSAGE_ID)}@symphony.invalid>`);
    assert.equal(mail.headers.get('x-symphony-message-id'), MESSAGE_ID);
    assert.ok(mail.date instanceof Date && !Number.isNaN(mail.date.getTime()));

    await convert(messageFile, { out, json: true });
    assert.ok(raw.equals(readFileSync(written.file)), 'same input, same bytes');
  });

  it('converts an array of messages into one file each', async () => {
    const list = join(dir, 'list.json');
    const second = { ...fixture.message, messageId: 'E_U_0jnuzmQcBOr1CIGPqX___ouMNdY5bQ', timestamp: 1718262060000 };
    writeFileSync(list, JSON.stringify([fixture.message, second]));
    const out = join(dir, 'list-out');
    assert.equal((await convert(list, { out })).code, 0);
    assert.deepEqual(
      readdirSync(out).sort(),
      [`${idToken(MESSAGE_ID)}.eml`, `${idToken(second.messageId)}.eml`].sort(),
    );
  });

  it('refuses JSON that is not a V4Message, a bad members file and a missing file', async () => {
    await rejectsInput(
      convert(join(FIXTURE_DIR, 'room-plain.json'), { out: join(dir, 'x') }),
      /room-plain\.json is not a V4Message/,
    );
    const arr = join(dir, 'array.json');
    writeFileSync(arr, JSON.stringify([fixture.message, { hello: 1 }]));
    await rejectsInput(convert(arr, { out: join(dir, 'x') }), /array\.json\[1\] is not a V4Message/);

    const members = join(dir, 'bad-members.json');
    writeFileSync(members, JSON.stringify({ members: [{ user: { email: 'no-id@bank.example' } }] }));
    await rejectsInput(
      convert(messageFile, { members, out: join(dir, 'y') }),
      /members\[0\]\.user has no numeric userId/,
    );
    await rejectsInput(convert(join(dir, 'nope.json'), { out: join(dir, 'z') }), /cannot read message .*nope\.json/);
  });

  it('refuses a Message-ID domain that would make a malformed Message-ID, before writing anything', async () => {
    const out = join(dir, 'bad-domain');
    for (const domain of ['a b', 'x>\r\nBcc: eve@evil.example', 'localhost', '', 'archive.example.com.']) {
      await assert.rejects(convert(messageFile, { out, messageIdDomain: domain }), (e: unknown) => {
        assert.ok(isAppError(e, 'ERR_CONFIG_INVALID'), String(e));
        assert.match(e.message, /--message-id-domain/);
        return true;
      });
    }
    assert.ok(!existsSync(out));
  });
});
