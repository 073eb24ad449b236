/**
 * Golden files: one `.eml` per fixture input (`test/fixtures/convert/*.json`), compared byte for byte. Each
 * fixture is a PresentationML construct of symphony-api.md §6 or a message kind (reply, edit, shared post,
 * suppression, Elements form and response, hostile input). Regenerate after an intended change with
 * `UPDATE_GOLDEN=1 node --import tsx --test test/convert/golden.test.ts` and review the diff.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { createSymphonyMimeConverter } from '../../src/convert/index.ts';
import { FIXTURE_DIR, assertWireFormat, fixtureNames, loadFixture } from './helpers.ts';

const update = process.env['UPDATE_GOLDEN'] === '1';
const names = fixtureNames();

test('every golden .eml has its fixture input', () => {
  const orphans = readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.eml'))
    .filter((f) => !names.includes(f.slice(0, -4)));
  assert.deepEqual(orphans, []);
  assert.ok(names.length >= 20, `only ${names.length} fixtures`);
});

for (const name of names) {
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
