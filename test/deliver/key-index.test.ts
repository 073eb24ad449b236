import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyIndex } from '../../src/deliver/key-index.ts';

test('KeyIndex holds every key set, with its value, through growth, and nothing else', () => {
  const index = new KeyIndex();
  const n = 50_000;
  for (let i = 0; i < n; i++) index.set(`key${i}`, i);
  assert.equal(index.size, n);
  for (let i = 0; i < n; i++) assert.equal(index.get(`key${i}`), i);
  for (let i = n; i < 2 * n; i++) assert.equal(index.has(`key${i}`), false);
  index.set('key7', 99);
  assert.equal(index.size, n);
  assert.equal(index.get('key7'), 99);
  assert.equal(index.get('absent'), undefined);
  index.clear();
  assert.equal(index.size, 0);
  assert.equal(index.has('key1'), false);
});

test('KeyIndex keeps a value of 0 and the largest UID apart from absence', () => {
  const index = new KeyIndex();
  index.set('zero');
  index.set('max', 0xffffffff);
  assert.equal(index.get('zero'), 0);
  assert.equal(index.get('max'), 0xffffffff);
  assert.equal(index.has('zero'), true);
});
