/**
 * The `convert` examples of README.md (`### convert`) run as written, from source, on the example files in
 * test/fixtures/convert/cli/: documentation that stops working fails here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { assertWireFormat } from './helpers.ts';
import { runCli as cli } from '../helpers/cli.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'readme-convert-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The shell commands of the section's code block, continuation lines joined. */
function examples(): string[][] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(
    readme.indexOf('### convert\n'),
    readme.indexOf('\n## ', readme.indexOf('### convert\n')),
  );
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .filter((l) => l.startsWith('npx symphony-archiver '))
    .map((l) => l.split(/\s+/).slice(2));
}

describe('README convert examples', { concurrency: true }, () => {
  const commands = examples();

  it('has the two examples', () => assert.equal(commands.length, 2, JSON.stringify(commands)));

  commands.forEach((args, n) => {
    it(`runs: convert ${args.slice(1).join(' ')}`, async () => {
      const out = join(dir, `example-${n}`);
      const r = await cli(args.map((a) => (a === '/tmp/eml' ? out : a)));
      assert.equal(r.code, 0, r.stderr);
      const files = readdirSync(out).sort();
      assert.equal(files.length, 2);
      for (const f of files) {
        const raw = readFileSync(join(out, f));
        assert.equal(assertWireFormat(raw), undefined);
        const mail = await simpleParser(raw, { keepCidLinks: true });
        assert.match(mail.text ?? '', /EUR 5y swaps opening tight|Curve attached/);
      }
      if (!args.includes('--members')) {
        assert.match(r.stderr, /warning: attachment "curve.csv" not provided/);
        return;
      }
      const written = (JSON.parse(r.stdout) as { written: { file: string; warnings: string[] }[] }).written;
      assert.deepEqual(
        written.map((w) => w.warnings),
        [[], []],
      );
      const reply = await simpleParser(readFileSync(written[1]!.file), { keepCidLinks: true });
      assert.deepEqual(
        reply.attachments.map((a) => [a.filename, a.contentDisposition]),
        [
          ['image-1.png', 'inline'],
          ['curve.csv', 'attachment'],
          ['symphony-message.json', 'attachment'],
        ],
      );
      const to = [reply.to].flat().flatMap((a) => a?.value.map((v) => v.address) ?? []);
      assert.deepEqual(to.sort(), ['alice.martin@bank.example', 'user-68719476737@symphony.invalid']);
    });
  });
});
