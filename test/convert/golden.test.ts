/**
 * Golden files: representative messages → `.eml`, compared byte for byte. Regenerate after an intended
 * change with `UPDATE_GOLDEN=1 node --import tsx --test test/convert/golden.test.ts` and review the diff.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { createSymphonyMimeConverter } from '../../src/convert/index.ts';
import { FIXTURE_DIR, assertWireFormat, loadFixture } from './helpers.ts';

const FIXTURES = ['room-plain', 'im-entities', 'attachment', 'edit'];
const update = process.env['UPDATE_GOLDEN'] === '1';

for (const name of FIXTURES) {
  test(`golden: ${name}.eml`, async () => {
    const item = await createSymphonyMimeConverter().convert(loadFixture(name));
    assert.equal(assertWireFormat(item.raw), undefined);
    const path = `${FIXTURE_DIR}${name}.eml`;
    if (update || !existsSync(path)) {
      assert.ok(update, `golden ${path} is missing; run with UPDATE_GOLDEN=1 to create it`);
      writeFileSync(path, item.raw);
      return;
    }
    const expected = readFileSync(path);
    assert.ok(
      item.raw.equals(expected),
      `${name}.eml differs from the golden file (UPDATE_GOLDEN=1 regenerates it)\n${item.raw.toString('utf8')}`,
    );
  });
}
