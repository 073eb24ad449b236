import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Person } from '../../src/core/types.ts';
import { normalizeAddress, resolveMailbox, type MappingConfig } from '../../src/mapping/index.ts';

const NONE: MappingConfig = { overrides: {} };
const alice: Person = { userId: '7215545078461', email: 'Alice.Martin@Bank.Example', displayName: 'Alice Martin' };

function unmappedReason(person: Person, config: MappingConfig): string {
  const r = resolveMailbox(person, config);
  assert.ok('unmapped' in r, `expected unmapped, got ${JSON.stringify(r)}`);
  return r.unmapped;
}

describe('resolveMailbox', () => {
  it('uses the Email property, compared case-insensitively and trimmed', () => {
    assert.deepEqual(resolveMailbox(alice, NONE), { mailbox: 'alice.martin@bank.example' });
    assert.deepEqual(resolveMailbox({ userId: '1', email: '  BOB@bank.example ' }, NONE), {
      mailbox: 'bob@bank.example',
    });
  });

  it('maps every case variant of an address to one mailbox', () => {
    const local = fc.stringMatching(/^[a-z0-9]([a-z0-9._-]{0,20}[a-z0-9])?$/).filter((s) => !s.includes('..'));
    const address = fc.tuple(local, fc.constantFrom('bank.example', 'corp.example.co.uk')).map(([l, d]) => `${l}@${d}`);
    fc.assert(
      fc.property(address, fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), (a, upper) => {
        const varied = [...a].map((ch, i) => (upper[i % upper.length] ? ch.toUpperCase() : ch)).join('');
        assert.deepEqual(resolveMailbox({ userId: '1', email: varied }, NONE), { mailbox: a });
      }),
    );
  });

  it('prefers an override by user id, then by email, over the Email property', () => {
    const config: MappingConfig = {
      overrides: {
        '7215545078461': 'Archive-Alice@Bank.Example',
        'alice.martin@bank.example': 'by-email@bank.example',
        'bob@bank.example': 'bob-archive@bank.example',
      },
    };
    assert.deepEqual(resolveMailbox(alice, config), { mailbox: 'archive-alice@bank.example' });
    assert.deepEqual(resolveMailbox({ ...alice, userId: '2' }, config), { mailbox: 'by-email@bank.example' });
    assert.deepEqual(resolveMailbox({ userId: '3', email: 'BOB@Bank.Example' }, config), {
      mailbox: 'bob-archive@bank.example',
    });
  });

  it('maps a user without email through an override by user id', () => {
    const config: MappingConfig = { overrides: { '68719476737': 'carol@bank.example' } };
    assert.deepEqual(resolveMailbox({ userId: '68719476737', firstName: 'Carol' }, config), {
      mailbox: 'carol@bank.example',
    });
  });

  it('leaves a user without email unmapped, with a reason naming the user', () => {
    assert.match(unmappedReason({ userId: '68719476737' }, NONE), /68719476737.*no email/);
    assert.match(unmappedReason({ userId: '5', email: '   ' }, NONE), /no email/);
  });

  it('leaves an address that is not a plain mailbox unmapped', () => {
    for (const email of [
      'Alice Martin <alice@bank.example>',
      '"alice martin"@bank.example',
      'alice@localhost',
      'alice@@bank.example',
      'alice..martin@bank.example',
      'alice@bank.example\r\nBcc: eve@evil.example',
      'alice@-bank.example',
    ]) {
      assert.match(unmappedReason({ userId: '9', email }, NONE), /not a plain mailbox address/, email);
    }
  });

  it('restricts mailboxes to the archived domains when domains is set', () => {
    const config: MappingConfig = { overrides: { '9': 'external-archive@other.example' }, domains: ['bank.example'] };
    assert.deepEqual(resolveMailbox(alice, config), { mailbox: 'alice.martin@bank.example' });
    assert.match(unmappedReason({ userId: '7', email: 'x@partner.example' }, config), /outside the archived domains/);
    assert.match(unmappedReason({ userId: '7', email: 'x@sub.bank.example' }, config), /outside/);
    assert.match(unmappedReason({ userId: '7', email: 'x@evilbank.example' }, config), /outside/);
    // An explicit override is the operator's decision and is not filtered by domain.
    assert.deepEqual(resolveMailbox({ userId: '9' }, config), { mailbox: 'external-archive@other.example' });
  });

  it('does not apply catchAll itself: unmapped stays unmapped (the pipeline adds the catch-all copy)', () => {
    const config: MappingConfig = { overrides: {}, catchAll: 'compliance@bank.example' };
    assert.ok('unmapped' in resolveMailbox({ userId: '1' }, config));
    assert.deepEqual(resolveMailbox(alice, config), { mailbox: 'alice.martin@bank.example' });
  });

  it('does not treat Object.prototype members as overrides', () => {
    for (const email of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      assert.match(unmappedReason({ userId: '1', email }, NONE), /not a plain mailbox address/);
    }
    assert.match(unmappedReason({ userId: 'constructor' }, NONE), /no email/);
  });
});

describe('normalizeAddress', () => {
  it('lower-cases plain addresses and refuses others', () => {
    assert.equal(normalizeAddress(' A.B+tag@Example.COM '), 'a.b+tag@example.com');
    assert.equal(normalizeAddress('no-at-sign'), undefined);
    assert.equal(normalizeAddress(''), undefined);
    assert.equal(
      normalizeAddress(`${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.com`),
      undefined,
    );
  });
});
