// Selector generation and text in a real DOM (Chromium), through a test bundle of
// src/selector.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { build } from 'esbuild';
import { browser } from './harness.mjs';

let chrome, bundle;

before(async () => {
  const out = await build({
    stdin: { contents: "import * as s from './src/selector'; window.__sel = s;", resolveDir: '.', loader: 'ts' },
    bundle: true,
    write: false,
    format: 'iife',
  });
  bundle = out.outputFiles[0].text;
  chrome = await browser();
});
after(() => chrome?.close());

test('short stable selectors, trimmed text, nothing from fields or blocked subtrees', async () => {
  const p = await chrome.newPage();
  await p.setContent(`<body>
    <main><div class="card promo x123456"><button class="buy primary extra">  Add
      to   cart </button></div><div class="card"><button class="buy">Two</button><button class="buy">Three</button></div></main>
    <nav id="top"><a href="/">Home</a></nav>
    <form><input id="email" value="me@example.com"><textarea>draft text</textarea></form>
    <div data-spoor-block><p id="acct">Account 12345</p></div>
    <p id="long">${'word '.repeat(100)}</p>
    <span id="u123456">generated id</span>
  </body>`);
  await p.addScriptTag({ content: bundle });
  const r = await p.evaluate(() => {
    const { selector, text, blocked } = window.__sel;
    const q = (s) => document.querySelector(s);
    const b = document.querySelectorAll('button');
    return {
      first: selector(b[0]),
      firstText: text(b[0]),
      third: selector(b[2]),
      link: selector(q('nav a')),
      input: selector(q('#email')),
      inputText: text(q('#email')),
      areaText: text(q('textarea')),
      blocked: blocked(q('#acct')),
      notBlocked: blocked(b[0]),
      longText: text(q('#long')),
      generated: selector(q('#u123456')),
    };
  });
  assert.equal(r.first, 'body>main>div.card.promo:nth-of-type(1)>button.buy.primary');
  assert.equal(r.firstText, 'Add to cart');
  assert.equal(r.third, 'body>main>div.card:nth-of-type(2)>button.buy:nth-of-type(2)');
  assert.equal(r.link, '#top>a');
  assert.equal(r.input, '#email');
  assert.equal(r.inputText, '', 'never a field value');
  assert.equal(r.areaText, '', 'never a textarea');
  assert.equal(r.blocked, true);
  assert.equal(r.notBlocked, false);
  assert.equal(r.longText.length, 80);
  assert.ok(r.longText.endsWith('…'));
  assert.equal(r.generated, 'body>span', 'ids that look generated are not used');
});
