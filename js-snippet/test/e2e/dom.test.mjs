// Full-page replay end to end: a page on another origin recorded with rrweb through spoor.js
// (masked by default), the frames that leave the browser read back, the replay inspected in
// the viewer, a hostile recorded page, a server restart mid-session, and a site that has not
// opted in.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync, inflateSync } from 'node:zlib';
import { DOM_KEY, KEY, TOKEN, api, browser, rows, shotsDir, startPages, startSpoor, stop, tempDir, waitFor } from './harness.mjs';

let spoor, pages, chrome, dir;
const ref = {};
const TYPED = 'typed-secret-9931';
/** Page text that must never leave the browser. (The document title is not among them: the
 * hello and page events carry it by contract, whatever the replay mode.) */
const SECRETS = ['Open dialog now', 'Quarterly Heading', 'Confidential paragraph', 'Modal secret text', 'secret item', 'Photo of the CEO', 'Your email here', TYPED];

const domPage = (key, extra = '') => () => `<!doctype html>
<html><head><meta charset="utf-8"><title>DOM test page</title>
<style>#modal { display: none; position: fixed; left: 100px; top: 80px; width: 300px; height: 120px; background: #fee; border: 2px solid #c00; } #modal.open { display: block; }</style>
</head><body style="margin:0;font:16px sans-serif">
<h1>Quarterly Heading</h1>
<p>Confidential paragraph about the numbers.</p>
<p data-spoor-unmask id="price">Public price 42</p>
<img id="photo" alt="Photo of the CEO" width="120" height="80" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<form id="f" action="/signup"><input id="email" placeholder="Your email here"><textarea id="notes"></textarea></form>
<ul id="list"><li>first secret item</li></ul>
<button id="open" style="margin:20px;width:140px;height:40px">Open dialog now</button>
<div id="modal" role="dialog"><p>Modal secret text</p></div>
<script>
  let n = 1;
  setInterval(() => { if (n < 6) { const li = document.createElement('li'); li.textContent = 'secret item ' + ++n; document.getElementById('list').append(li); } }, 300);
  document.getElementById('open').onclick = () => document.getElementById('modal').classList.add('open');
</script>
<script async src="${ref.base}/spoor.js" data-key="${key}" data-flush-ms="200" data-replay="dom" ${extra}></script>
</body></html>`;

before(async () => {
  dir = tempDir();
  pages = await startPages({
    '/dom.html': domPage(DOM_KEY),
    '/off.html': domPage(KEY),
    '/later.html': domPage(DOM_KEY, ''),
    '/live.html': domPage(DOM_KEY, ''),
    '/consent.html': () => domPage(DOM_KEY)().replace('<h1>', "<script>window.spoor = window.spoor || function () { (spoor.q = spoor.q || []).push(arguments); }; spoor('consent', false);</script><h1>"),
  });
  spoor = await startSpoor({ dir, pageOrigin: pages.origin });
  ref.base = spoor.base;
  chrome = await browser();
});

after(async () => {
  await chrome?.close();
  await stop(spoor);
  pages?.server.close();
});

/** Every text a page sent: each WebSocket frame and beacon as bytes (latin1), plus every
 * kind-11 payload in them inflated back to its JSON. */
function watch(p) {
  const sent = [];
  const received = [];
  p.on('websocket', (ws) => {
    ws.on('framesent', (f) => sent.push(Buffer.from(f.payload).toString('latin1')));
    ws.on('framereceived', (f) => received.push(Buffer.from(f.payload).toString('latin1')));
  });
  p.on('request', (r) => {
    if (r.method() === 'POST') sent.push(r.postData() || '');
  });
  return {
    sent,
    received,
    /** The frames' bytes and the inflated DOM payloads, as one text. */
    text() {
      const out = [...sent];
      for (const f of sent) {
        for (const m of f.match(/[A-Za-z0-9+/]{16,}={0,2}/g) || []) {
          try {
            out.push(inflateSync(Buffer.from(m, 'base64')).toString('utf8'));
          } catch {
            // Not a payload (or a part of one).
          }
        }
      }
      return out.join('\n');
    },
  };
}

async function sessionOf(site, url) {
  return waitFor(`a ${site} session for ${url}`, async () => (await api(spoor.base, `/api/sessions?site=${site}&url=${encodeURIComponent(url)}`)).sessions[0]);
}

/** The rrweb events stored for a session, decoded. */
async function domEvents(site, sid) {
  const r = await rows(spoor.base, site, sid);
  return r.rows.filter((x) => x.kind === 11 && x.f.length === 1).map((x) => JSON.parse(inflateSync(Buffer.from(x.f[0], 'base64')).toString('utf8')));
}

test('a page recorded with the defaults sends no page text and no typed value; the replay shows the modal at the click, masked', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1000, height: 700 } });
  const p = await ctx.newPage();
  const w = watch(p);
  await p.goto(pages.origin + '/dom.html');
  const s = await sessionOf('dom', '/dom.html');
  await p.click('#email');
  await p.keyboard.type(TYPED);
  await p.fill('#notes', TYPED);
  await p.waitForTimeout(1200); // the list grows
  await p.click('#open');
  await p.waitForTimeout(600);
  const click = await waitFor('the click on #open, stored', async () => {
    const r = await rows(spoor.base, 'dom', s.sid);
    return r.rows.find((x) => x.kind === 2 && x.f[3] === '#open');
  });
  const events = await waitFor('the modal opening, stored', async () => {
    const ev = await domEvents('dom', s.sid);
    return ev.some((e) => e.type === 3 && e.data.source === 0 && JSON.stringify(e.data).includes('open')) && ev;
  });
  assert.ok(events.some((e) => e.type === 2), 'a full snapshot');
  assert.ok(events.some((e) => e.type === 4 && e.data.href === pages.origin + '/dom.html'), 'meta with the bare URL');
  const text = w.text();
  assert.ok(text.includes('Public price 42'), 'the unmasked element is sent as it is');
  assert.ok(text.length > 2000, `read ${text.length} characters of frames`);
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `"${secret}" left the browser`);
  assert.ok(!events.some((e) => e.type === 3 && e.data.source === 5), 'no input events at all');
  const summary = await api(spoor.base, `/api/sessions/${s.sid}?site=dom`);
  assert.ok(summary.dom_bytes > 1000, `dom_bytes ${summary.dom_bytes}`);

  // The viewer, paused just before the click and just after it.
  const start = summary.started;
  const view = await ctx.newPage();
  const errors = [];
  view.on('pageerror', (e) => errors.push(String(e)));
  const at = async (ms) => {
    await view.goto(`${spoor.base}/sessions/${s.sid}?site=dom&token=${TOKEN}&t=${(ms - start) / 1000}`);
    const frame = view.frameLocator('.dom-stage iframe');
    await frame.locator('#open').waitFor({ state: 'attached', timeout: 10_000 });
    await view.waitForTimeout(300);
    return frame;
  };
  const display = (frame) => frame.locator('#modal').evaluate((m) => getComputedStyle(m).display);
  let frame = await at(click.t - 300);
  // Streamed events are drawn as they arrive; the page settles once all are in.
  await view.waitForTimeout(700);
  assert.equal(await display(frame), 'none', 'closed before the click');
  frame = await at(click.t + 400);
  try {
    await waitFor('the modal, open after the click', async () => (await display(frame)) === 'block', 5000);
  } catch (e) {
    const ds = await view.locator('.dom-stage').evaluate((d) => ({ ...d.dataset }));
    const mut = events.filter((x) => x.type === 3 && x.data.source === 0 && JSON.stringify(x.data).includes('open')).map((x) => x.timestamp);
    throw new Error(`${e.message}; click ${click.t}, stage ${JSON.stringify(ds)}, opening mutations at ${mut}, events ${events.length}`);
  }
  const modalText = await frame.locator('#modal').textContent();
  assert.match(modalText.trim(), /^[*\s]+$/, `modal text masked: ${modalText}`);
  assert.equal((await frame.locator('#price').textContent()).trim(), 'Public price 42');
  assert.match((await frame.locator('h1').textContent()).trim(), /^[*\s]+$/);
  // A blocked image is an empty placeholder of its size: no source, no alt text, no id.
  const imgs = await frame.locator('img').evaluateAll((els) => els.map((e) => [e.getAttribute('src'), e.getAttribute('alt'), e.id, /px$/.test(e.style.width)]));
  assert.deepEqual(imgs, [[null, null, '', true]], 'images are placeholders');
  assert.equal(await view.locator('.dom-stage iframe').getAttribute('sandbox'), 'allow-same-origin');
  await view.screenshot({ path: shotsDir() + 'dom-replay.png' });
  // The rrweb events download as JSON that rrweb-player loads: an array, meta first.
  const [download] = await Promise.all([view.waitForEvent('download'), view.click('text=Download rrweb JSON')]);
  const saved = JSON.parse(await streamText(await download.createReadStream()));
  assert.ok(Array.isArray(saved) && saved[0].type === 4 && saved.some((e) => e.type === 2), 'rrweb events');
  assert.equal(download.suggestedFilename(), `${s.sid}.rrweb.json`);
  // The wireframe is one switch away.
  await view.selectOption('select.view', 'wireframe');
  await view.locator('canvas.stage').waitFor({ state: 'visible' });
  assert.deepEqual(errors, []);
  await ctx.close();
});

async function streamText(stream) {
  let out = '';
  for await (const chunk of stream) out += chunk;
  return out;
}

test('consent: refused before the script loads, nothing of the page is recorded; given later, recording starts; withdrawn, it stops', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1000, height: 700 } });
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/consent.html');
  const s = await sessionOf('dom', '/consent.html');
  await p.click('#open');
  await waitFor('the click, stored', async () => (await rows(spoor.base, 'dom', s.sid)).rows.some((x) => x.kind === 2));
  await p.waitForTimeout(500);
  assert.equal((await domEvents('dom', s.sid)).length, 0, 'no DOM event without consent');
  assert.equal(await p.evaluate(() => !!window.__spoorDom), false, 'the recorder is not even loaded');
  await p.evaluate(() => spoor('consent', true));
  await waitFor('a full snapshot after consent', async () => (await domEvents('dom', s.sid)).some((e) => e.type === 2));
  await p.evaluate(() => spoor('consent', false));
  await p.waitForTimeout(400);
  const before = (await domEvents('dom', s.sid)).length;
  await p.evaluate(() => document.getElementById('list').append(Object.assign(document.createElement('li'), { textContent: 'after withdrawal' })));
  await p.click('#price');
  await waitFor('the later click, stored', async () => (await rows(spoor.base, 'dom', s.sid)).rows.filter((x) => x.kind === 2).length >= 2);
  await p.waitForTimeout(500);
  assert.equal((await domEvents('dom', s.sid)).length, before, 'nothing recorded after consent is withdrawn');
  await ctx.close();
});

test('following a session live shows the page change as it becomes durable', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1000, height: 700 } });
  const p = await ctx.newPage();
  await p.goto(pages.origin + '/live.html');
  const s = await sessionOf('dom', '/live.html');
  await waitFor('a stored full snapshot', async () => (await domEvents('dom', s.sid)).some((e) => e.type === 2));
  const view = await ctx.newPage();
  await view.goto(`${spoor.base}/sessions/${s.sid}?site=dom&token=${TOKEN}&live=1`);
  const frame = view.frameLocator('.dom-stage iframe');
  await frame.locator('#open').waitFor({ state: 'attached', timeout: 10_000 });
  assert.equal(await frame.locator('#late').count(), 0);
  await p.evaluate(() => document.body.append(Object.assign(document.createElement('div'), { id: 'late', textContent: 'late secret' })));
  await frame.locator('#late').waitFor({ state: 'attached', timeout: 10_000 });
  assert.match(await frame.locator('#late').textContent(), /^[*\s]+$/);
  await ctx.close();
});

/** A recorded page crafted by an attacker, sent straight to the API as kind-11 events. */
function hostileEvents(t) {
  let id = 1;
  const el = (tagName, attributes, childNodes = []) => ({ type: 2, tagName, attributes, childNodes, id: ++id });
  const txt = (textContent) => ({ type: 3, textContent, id: ++id });
  const doc = {
    type: 0,
    id: 1,
    childNodes: [
      el('html', {}, [
        el('head', {}, [
          el('base', { href: 'https://evil.example/' }),
          el('meta', { 'http-equiv': 'refresh', content: '0;url=https://evil.example/' }),
          el('script', {}, [txt('parent.__pwned = "script";')]),
        ]),
        el('body', { onload: 'parent.__pwned = "onload"' }, [
          el('h1', { id: 'hostile' }, [txt('hostile page')]),
          el('img', { src: 'x', onerror: 'parent.__pwned = "onerror"' }),
          el('a', { id: 'js', href: 'javascript:parent.__pwned="href"' }, [txt('link')]),
          el('form', { action: 'https://evil.example/steal', method: 'post' }, [el('input', { name: 'x', value: 'y' })]),
          el('iframe', { srcdoc: '<script>parent.parent.__pwned="srcdoc"</script>' }),
          el('script', { src: 'https://evil.example/x.js' }),
        ]),
      ]),
    ],
  };
  const pack = (e) => deflateSync(Buffer.from(JSON.stringify(e))).toString('base64');
  return [
    { type: 4, data: { href: 'https://evil.example/', width: 800, height: 600 }, timestamp: t },
    { type: 2, data: { node: doc, initialOffset: { left: 0, top: 0 } }, timestamp: t + 1 },
    { type: 3, data: { source: 1, positions: [{ x: 10, y: 10, id: 2, timeOffset: 0 }] }, timestamp: t + 500 },
  ].map((e, i) => [11, i, pack(e)]);
}

test('a hostile recorded page runs no script and contacts no other site in the viewer', async () => {
  const t0 = Date.now();
  const body = { hello: { sid: 'hostile_dom_1', url: 'https://evil.example/' }, batches: [{ seq: 0, t0, ev: hostileEvents(t0) }] };
  const r = await fetch(`${spoor.base}/v1/batch?key=${DOM_KEY}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(r.status, 200, await r.text());
  const ctx = await chrome.newContext();
  const view = await ctx.newPage();
  const foreign = [];
  view.on('request', (req) => {
    if (!req.url().startsWith(spoor.base) && !req.url().startsWith('data:') && !req.url().startsWith('about:')) foreign.push(req.url());
  });
  await view.goto(`${spoor.base}/sessions/hostile_dom_1?site=dom&token=${TOKEN}&t=0.2`);
  const frame = view.frameLocator('.dom-stage iframe');
  await frame.locator('#hostile').waitFor({ state: 'attached', timeout: 10_000 });
  await view.waitForTimeout(1000);
  assert.equal(await view.evaluate(() => window.__pwned), undefined, 'no recorded script ran');
  assert.equal(await frame.locator('#hostile').textContent(), 'hostile page');
  assert.ok(view.url().startsWith(spoor.base), `still on the viewer: ${view.url()}`);
  assert.deepEqual(foreign, [], 'no request left for another origin');
  await ctx.close();
});

test('a server restart mid-session loses nothing and stores nothing twice', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1000, height: 700 } });
  const p = await ctx.newPage();
  const w = watch(p);
  await p.goto(pages.origin + '/later.html');
  const s = await sessionOf('dom', '/later.html');
  await waitFor('a stored full snapshot', async () => (await domEvents('dom', s.sid)).some((e) => e.type === 2));
  await stop(spoor);
  await p.click('#open'); // recorded while the server is down
  await p.waitForTimeout(500);
  spoor = await startSpoor({ dir, port: spoor.port, pageOrigin: pages.origin });
  await p.evaluate(() => document.getElementById('list').append(Object.assign(document.createElement('li'), { textContent: 'after restart' })));
  const r = await waitFor('the modal opening and the later item, stored', async () => {
    const ev = await domEvents('dom', s.sid);
    const text = JSON.stringify(ev);
    return text.includes('"open"') && ev.length > 3 && (await rows(spoor.base, 'dom', s.sid));
  });
  const seqs = r.chunks.map((c) => c.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => i), 'every batch once, none missing');
  // Every DOM row the page sent is stored, once.
  const stored = r.rows.filter((x) => x.kind === 11).map((x) => x.f[0]);
  assert.equal(new Set(stored).size, stored.length, 'no DOM row stored twice');
  const sentRows = new Set(w.sent.join('\n').match(/eJ[A-Za-z0-9+/]{20,}={0,2}/g) || []);
  assert.ok(sentRows.size > 2, `${sentRows.size} DOM rows seen leaving the page`);
  const lost = [...sentRows].filter((row) => !stored.includes(row));
  assert.deepEqual(lost, [], 'every DOM row the page sent is stored');
  await ctx.close();
});

test('a site that has not enabled full-page replay gets dom_disabled, and the rest of the session is recorded', async () => {
  const ctx = await chrome.newContext({ viewport: { width: 1000, height: 700 } });
  const p = await ctx.newPage();
  const w = watch(p);
  await p.goto(pages.origin + '/off.html');
  const s = await sessionOf('e2e', '/off.html');
  await waitFor('the dom_disabled error', async () => w.received.some((f) => f.includes('dom_disabled')));
  await p.click('#open');
  const r = await waitFor('the click, stored', async () => {
    const r = await rows(spoor.base, 'e2e', s.sid);
    return r.rows.some((x) => x.kind === 2 && x.f[3] === '#open') && r;
  });
  assert.ok(!r.rows.some((x) => x.kind === 11), 'no DOM row stored');
  const seqs = r.chunks.map((c) => c.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => i), 'the session goes on without a gap');
  await ctx.close();
});
