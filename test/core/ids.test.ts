import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalId, idToken, messageIdFor, standardId, userIdOf } from '../../src/core/ids.ts';

/** A real Symphony message id (25 bytes) in the forms the API uses. */
const URLSAFE = 'kWpOSc30hEJtOoT89gLinH___ouMyhHwdA';
const STANDARD = 'kWpOSc30hEJtOoT89gLinH///ouMyhHwdA==';

const bytes = fc.uint8Array({ minLength: 1, maxLength: 40 });
const b64url = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
/** Any code points, lone surrogates included (fast-check's `unit: 'binary'` takes seconds to set up). */
const anyString = fc.string({
  unit: fc.integer({ min: 0, max: 0x10ffff }).map((c) => String.fromCodePoint(c)),
  maxLength: 60,
});

describe('canonicalId', () => {
  it('maps the standard padded and URL-safe forms of an id to the URL-safe unpadded one', () => {
    assert.equal(canonicalId(STANDARD), URLSAFE);
    assert.equal(canonicalId(URLSAFE), URLSAFE);
    assert.equal(canonicalId(`  ${STANDARD}\n`), URLSAFE);
    assert.equal(standardId(URLSAFE), STANDARD);
  });

  it('property: canonicalId(standard(x)) === canonicalId(urlsafe(x)) === urlsafe(x)', () => {
    fc.assert(
      fc.property(bytes, (raw) => {
        const buf = Buffer.from(raw);
        const std = buf.toString('base64');
        const url = buf.toString('base64url');
        assert.equal(canonicalId(std), canonicalId(url));
        assert.equal(canonicalId(std), url);
        assert.equal(canonicalId(canonicalId(std)), canonicalId(std), 'idempotent');
        assert.equal(standardId(url), std);
        assert.equal(idToken(std), idToken(url));
      }),
    );
  });
});

describe('idToken', () => {
  it('is the hex of the id bytes for base64 ids, the same for both forms', () => {
    const hex = Buffer.from(URLSAFE, 'base64url').toString('hex');
    assert.equal(idToken(URLSAFE), hex);
    assert.equal(idToken(STANDARD), hex);
    assert.equal(hex.length, 50);
  });

  it('is [a-z0-9] only, for any input', () => {
    fc.assert(
      fc.property(anyString, (id) => {
        assert.match(idToken(id), /^[a-z0-9]+$/);
      }),
    );
    for (const id of ['', ' ', 'not base64!', 'a.b', 'ÄÖÜ', '<x@y>', '../../etc/passwd', 'A']) {
      assert.match(idToken(id), /^[a-z0-9]+$/, id);
    }
  });

  it('is injective over distinct canonical ids', () => {
    const examples = [
      URLSAFE,
      'kWpOSc30hEJtOoT89gLinH___ouMyhHwdB',
      'AA',
      'AB',
      'AC',
      'AAA',
      'AAAA',
      'A',
      'u00',
      '00',
      'x y',
    ];
    const tokens = examples.map(idToken);
    assert.equal(
      new Set(tokens).size,
      examples.length,
      JSON.stringify(Object.fromEntries(examples.map((e, i) => [e, tokens[i]]))),
    );
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.oneof(b64url, fc.string({ maxLength: 8 })), { minLength: 2, maxLength: 30 }),
        (ids) => {
          const canon = new Set(ids.map(canonicalId));
          const tokens = new Set(ids.map(idToken));
          assert.equal(tokens.size, canon.size);
        },
      ),
    );
    fc.assert(
      fc.property(bytes, bytes, (a, b) => {
        fc.pre(!Buffer.from(a).equals(Buffer.from(b)));
        assert.notEqual(idToken(Buffer.from(a).toString('base64url')), idToken(Buffer.from(b).toString('base64url')));
      }),
    );
  });
});

describe('messageIdFor', () => {
  it('gives a dot-atom Message-ID that is the same for every form of the id', () => {
    const id = messageIdFor(URLSAFE, 'symphony.acme.example');
    assert.equal(id, `sym.${idToken(URLSAFE)}@symphony.acme.example`);
    assert.equal(messageIdFor(STANDARD, 'symphony.acme.example'), id);
    assert.match(id, /^sym\.[a-z0-9]+@[a-z0-9.-]+$/);
  });

  it('lower-cases and trims the domain, as the converter does', () => {
    assert.equal(messageIdFor(URLSAFE, ' Symphony.ACME.example '), messageIdFor(URLSAFE, 'symphony.acme.example'));
  });

  it('stays safe for hostile ids', () => {
    fc.assert(
      fc.property(anyString, (raw) => {
        assert.match(messageIdFor(raw, 'archive.example'), /^sym\.[a-z0-9]+@archive\.example$/);
      }),
    );
  });
});

describe('userIdOf', () => {
  it('accepts ids as numbers, strings and bigints, as canonical decimal strings', () => {
    assert.equal(userIdOf(7215545078461), '7215545078461');
    assert.equal(userIdOf('7215545078461'), '7215545078461');
    assert.equal(userIdOf(' 344147139494862 '), '344147139494862');
    assert.equal(userIdOf(0), '0');
    assert.equal(userIdOf(68719476737n), '68719476737');
    assert.equal(userIdOf('9223372036854775807'), '9223372036854775807');
    assert.equal(userIdOf('007'), '7', 'one user, one key');
    assert.equal(userIdOf('007'), userIdOf(7));
  });

  it('rejects junk', () => {
    for (const junk of [
      -1,
      1.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      2 ** 53,
      '',
      '  ',
      '12a',
      '-3',
      '1e5',
      '0x10',
      '1 2',
      '9223372036854775808',
      '123456789012345678901',
      -1n,
      2n ** 63n,
      null,
      undefined,
      {},
      [],
      [1],
      true,
    ]) {
      assert.equal(userIdOf(junk), undefined, String(junk));
    }
  });

  it('property: a safe integer and its decimal string give the same id', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        assert.equal(userIdOf(n), String(n));
        assert.equal(userIdOf(String(n)), String(n));
        assert.equal(userIdOf(BigInt(n)), String(n));
      }),
    );
  });
});
