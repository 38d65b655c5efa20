import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanUrl } from '../../src/url';

test('the query and the fragment are dropped unless kept', () => {
  assert.equal(cleanUrl('https://shop.example/search?q=shoes&email=a%40b.c#access_token=x', []), 'https://shop.example/search');
  assert.equal(
    cleanUrl('https://shop.example/p/17?ref=mail&utm_source=news&page=2', ['utm_source', 'page']),
    'https://shop.example/p/17?utm_source=news&page=2',
  );
  assert.equal(cleanUrl('https://shop.example/', ['']), 'https://shop.example/');
});

test('a hash route keeps its path, not its query', () => {
  assert.equal(cleanUrl('https://app.example/#/orders/7?token=abc', []), 'https://app.example/#/orders/7');
  assert.equal(cleanUrl('https://app.example/#!/inbox', []), 'https://app.example/#!/inbox');
  assert.equal(cleanUrl('https://app.example/#section-2', []), 'https://app.example/');
});

test('what is not a URL becomes empty (a missing referrer)', () => {
  assert.equal(cleanUrl('', []), '');
});
