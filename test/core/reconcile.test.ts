import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { idToken, standardId } from '../../src/core/ids.ts';
import { isComplete, reconcile, type Reconciliation } from '../../src/core/reconcile.ts';

const M1 = 'kWpOSc30hEJtOoT89gLinH___ouMyhHwdA';
const M2 = 'E_U_0jnuzmQcBOr1CIGPqX___ouMNdY5bQ';
const M3 = 'gXFV8vN37dNqjojYS_y2wX___o2KxfmUdA';

/** What each mailbox holds, by message id and number of copies. */
function inventoryOf(held: Record<string, Record<string, number>>) {
  const asked: string[] = [];
  const inventory = async (mailbox: string) => {
    asked.push(mailbox);
    return new Map(Object.entries(held[mailbox] ?? {}).map(([id, n]) => [idToken(id), n]));
  };
  return { inventory, asked };
}

describe('reconcile', () => {
  it('is complete when every expected item is there exactly once', async () => {
    const { inventory, asked } = inventoryOf({
      'alice@bank.example': { [M1]: 1, [M2]: 1 },
      'bob@bank.example': { [M1]: 1 },
    });
    const r = await reconcile({ 'alice@bank.example': [M1, M2], 'bob@bank.example': [M1] }, inventory);
    assert.deepEqual(r, { mailboxes: 2, expected: 3, present: 3, missing: [], duplicated: [], unexpected: [] });
    assert.ok(isComplete(r));
    assert.deepEqual(asked.sort(), ['alice@bank.example', 'bob@bank.example']);
  });

  it('reports missing, duplicated and unexpected items per mailbox', async () => {
    const { inventory } = inventoryOf({
      'alice@bank.example': { [M1]: 2, [M3]: 1 },
      'bob@bank.example': {},
    });
    const r = await reconcile({ 'alice@bank.example': [M1, M2], 'bob@bank.example': [M1] }, inventory);
    assert.equal(r.mailboxes, 2);
    assert.equal(r.expected, 3);
    assert.equal(r.present, 1);
    assert.deepEqual(r.missing, [
      { mailbox: 'alice@bank.example', messageId: M2 },
      { mailbox: 'bob@bank.example', messageId: M1 },
    ]);
    assert.deepEqual(r.duplicated, [{ mailbox: 'alice@bank.example', messageId: M1, copies: 2 }]);
    assert.deepEqual(r.unexpected, [{ mailbox: 'alice@bank.example', key: idToken(M3) }]);
    assert.equal(isComplete(r), false);
  });

  it('matches expected ids in either base64 form against the mailbox keys', async () => {
    const { inventory } = inventoryOf({ 'a@x.example': { [M1]: 1 } });
    const r = await reconcile({ 'a@x.example': [standardId(M1)] }, inventory);
    assert.ok(isComplete(r), JSON.stringify(r));
  });

  it('counts an id listed twice as one expected item', async () => {
    const { inventory } = inventoryOf({ 'a@x.example': {} });
    const r = await reconcile({ 'a@x.example': [M1, standardId(M1), M1] }, inventory);
    assert.equal(r.expected, 1);
    assert.deepEqual(r.missing, [{ mailbox: 'a@x.example', messageId: M1 }]);
  });

  it('finds items in a mailbox that should hold nothing', async () => {
    const { inventory } = inventoryOf({ 'a@x.example': { [M2]: 1 } });
    const r = await reconcile({ 'a@x.example': [] }, inventory);
    assert.deepEqual(r.unexpected, [{ mailbox: 'a@x.example', key: idToken(M2) }]);
    assert.equal(r.expected, 0);
    assert.equal(isComplete(r), false);
  });

  it('is complete for nothing expected', async () => {
    const r = await reconcile({}, async () => assert.fail('no mailbox to look at'));
    assert.deepEqual(r, { mailboxes: 0, expected: 0, present: 0, missing: [], duplicated: [], unexpected: [] });
    assert.ok(isComplete(r));
  });

  it('passes inventory failures on', async () => {
    await assert.rejects(
      reconcile({ 'a@x.example': [M1] }, async () => {
        throw new Error('mailbox gone');
      }),
      /mailbox gone/,
    );
  });
});

describe('isComplete', () => {
  const clean: Reconciliation = { mailboxes: 1, expected: 1, present: 1, missing: [], duplicated: [], unexpected: [] };
  it('is false as soon as any list is non-empty', () => {
    assert.ok(isComplete(clean));
    assert.equal(isComplete({ ...clean, missing: [{ mailbox: 'a', messageId: M1 }] }), false);
    assert.equal(isComplete({ ...clean, duplicated: [{ mailbox: 'a', messageId: M1, copies: 2 }] }), false);
    assert.equal(isComplete({ ...clean, unexpected: [{ mailbox: 'a', key: 'x' }] }), false);
  });
});
