import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppError, ERROR_CODES, isAppError, reasonOf, toAppError, type ErrorCode } from '../../src/core/errors.ts';

describe('ERROR_CODES', () => {
  it('uses one code form, ERR_[A-Z_], each with a description', () => {
    for (const [code, text] of Object.entries(ERROR_CODES)) {
      assert.match(code, /^ERR(_[A-Z]+)+$/);
      assert.ok(text.length > 0);
    }
  });
});

describe('AppError', () => {
  it('carries code, table message, detail and options', () => {
    const cause = new Error('socket hang up');
    const err = new AppError('ERR_SINK_THROTTLED', 'try later', {
      retryable: true,
      retryAfterMs: 3000,
      status: 429,
      cause,
    });
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'AppError');
    assert.equal(err.code, 'ERR_SINK_THROTTLED');
    assert.equal(err.message, `${ERROR_CODES.ERR_SINK_THROTTLED}: try later`);
    assert.equal(err.retryable, true);
    assert.equal(err.retryAfterMs, 3000);
    assert.equal(err.status, 429);
    assert.equal(err.cause, cause);
  });

  it('defaults to not retryable and the bare table message', () => {
    const err = new AppError('ERR_ABORTED');
    assert.equal(err.message, ERROR_CODES.ERR_ABORTED);
    assert.equal(err.retryable, false);
    assert.equal(err.retryAfterMs, undefined);
    assert.equal(err.status, undefined);
  });
});

describe('isAppError', () => {
  it('checks the class and, when given, the code', () => {
    const err = new AppError('ERR_STORE_LOCKED');
    assert.ok(isAppError(err));
    assert.ok(isAppError(err, 'ERR_STORE_LOCKED'));
    assert.equal(isAppError(err, 'ERR_STORE_IO'), false);
    assert.equal(isAppError(Object.assign(new Error('x'), { code: 'ERR_STORE_LOCKED' }), 'ERR_STORE_LOCKED'), false);
    assert.equal(isAppError('ERR_STORE_LOCKED'), false);
  });
});

describe('toAppError', () => {
  it('wraps a foreign error with its message and keeps it as cause', () => {
    const cause = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    const err = toAppError(cause, 'ERR_STORE_IO', 'commit', { retryable: true });
    assert.equal(err.code, 'ERR_STORE_IO');
    assert.equal(err.message, `${ERROR_CODES.ERR_STORE_IO}: commit: database is locked`);
    assert.equal(err.cause, cause);
    assert.equal(err.retryable, true);
  });

  it('returns an AppError unchanged and wraps non-errors', () => {
    const original = new AppError('ERR_SOURCE_AUTH');
    assert.equal(toAppError(original, 'ERR_STORE_IO'), original);
    const wrapped = toAppError('plain string', 'ERR_SINK_IO' satisfies ErrorCode);
    assert.equal(wrapped.message, `${ERROR_CODES.ERR_SINK_IO}: plain string`);
    assert.equal(wrapped.cause, 'plain string');
  });
});

describe('reasonOf', () => {
  it('is one line with the code and never a stack', () => {
    assert.equal(
      reasonOf(new AppError('ERR_SINK_IO', 'disk full')),
      `ERR_SINK_IO: ${ERROR_CODES.ERR_SINK_IO}: disk full`,
    );
    assert.equal(reasonOf(new TypeError('bad')), 'bad');
    assert.equal(reasonOf(42), '42');
    assert.ok(!reasonOf(new Error('x')).includes('    at '));
  });
});
