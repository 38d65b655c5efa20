// The encoder produces exactly rmp-serde's bytes (fixtures shared with tests/snippet_fixtures.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { decode, encode } from '../../src/msgpack';

const fixtures: { value: any; hex: string }[] = JSON.parse(readFileSync('test/fixtures/msgpack.json', 'utf8'));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('encodes every fixture byte for byte like rmp-serde', () => {
  for (const f of fixtures) assert.equal(hex(encode(f.value)), f.hex, JSON.stringify(f.value).slice(0, 80));
});

test('decodes every fixture back to its value', () => {
  for (const f of fixtures) assert.deepEqual(decode(Buffer.from(f.hex, 'hex')), f.value);
});

test('non-finite numbers become nil, undefined map values are left out', () => {
  assert.equal(hex(encode([NaN, Infinity])), '92c0c0');
  assert.equal(hex(encode({ a: undefined, b: 1 })), '81a16201');
});
