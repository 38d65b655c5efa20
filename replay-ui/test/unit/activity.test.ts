import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describe, lastAt, LogEvent } from '../../src/activity';

const ev = (k: number, f: unknown[], t = 0, rage = false): LogEvent => ({ t, k, f, rage });

test('each logged kind reads as a line', () => {
  assert.deepEqual(describe(ev(0, ['https://a.example/x', 'Shop'])), { label: 'Page', text: 'Shop · https://a.example/x', cls: 'page' });
  assert.equal(describe(ev(0, ['https://a.example/x']))!.text, 'https://a.example/x');
  assert.deepEqual(describe(ev(2, [10, 20, 0, '#buy', ' Buy now '])), { label: 'Click', text: '“Buy now” #buy', cls: 'click' });
  assert.deepEqual(describe(ev(2, [10, 20], 0, true)), { label: 'Rage click', text: 'at 10, 20', cls: 'rage' });
  assert.equal(describe(ev(5, [false]))!.label, 'Tab hidden');
  assert.equal(describe(ev(5, [true]))!.label, 'Tab visible');
  assert.deepEqual(describe(ev(6, ['form > input#email'])), { label: 'Input', text: 'form > input#email', cls: 'input' });
  assert.equal(describe(ev(9, ['add_to_cart', { item: 'lamp', n: 2 }]))!.text, 'add_to_cart {"item":"lamp","n":2}');
  assert.equal(describe(ev(9, ['signup', null]))!.text, 'signup');
  for (const k of [1, 3, 4, 7, 8, 10]) assert.equal(describe(ev(k, [1, 2])), null, `kind ${k}`);
});

test('long recorded text is clipped, and markup stays a string', () => {
  const long = 'x'.repeat(1000);
  assert.equal(describe(ev(6, [long]))!.text.length, 160);
  assert.equal(describe(ev(9, ['<img src=x onerror=alert(1)>', null]))!.text, '<img src=x onerror=alert(1)>');
});

test('the playhead lookup', () => {
  const events = [ev(0, [], 100), ev(2, [], 200), ev(2, [], 200), ev(6, [], 300)];
  assert.equal(lastAt(events, 50), -1);
  assert.equal(lastAt(events, 200), 2);
  assert.equal(lastAt(events, 299), 2);
  assert.equal(lastAt(events, 1e9), 3);
});
