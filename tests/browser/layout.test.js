// The monitor page's layout and its EQ controls in headless Chromium (an outside test pass).
//   node layout.test.js URL URL_NO_FILTERS [SCREENSHOT.png]
// URL: a daemon on the null backend with the test's files in --media-root (long.wav, short.wav);
// URL_NO_FILTERS: one started with --disable-filters. Checks:
//  1. at 1280×1000, with five voices playing (long file names, fades under way: the widest
//     cells), the Voices table fits its section (its scrollWidth ≤ the section's clientWidth), the
//     page has no horizontal scrollbar, and every Stop button lies inside the viewport and
//     stops its voice when clicked; the names keep a column of their own (≥ 48 px), and a short
//     one ("short") stays on one line; the same at 1024, 800, 390, 375 and 360 px wide (phones);
//     the header's output line stays one line beside a lost device's state;
//  2. the EQ sliders are live on the first daemon and disabled, with a note naming
//     --disable-filters, on the second (its EQ is answered and ignored); the level sliders stay live;
//  3. the Media section lists the root; beside a share that does not answer (its listing faked)
//     its entries are shown "not answering", not as links, with the reason once, and fit at 390 px;
//     a folder refused (504) shows the reason and a ../ link back up.
// Exits 0 pass, 1 fail.
'use strict';
const { harness, openPage } = require('./browser_common');

const [url, urlNoFilters, shot] = process.argv.slice(2);
const { fail, sleep, until } = harness('monitor_layout');

async function osc(base, address, args) {
  const res = await fetch(`${base}/api/osc`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ address, args }) });
  const j = await res.json();
  if (j.reply !== '/done') fail(`${address} ${JSON.stringify(args)} → ${JSON.stringify(j)}`);
  return j;
}

// What overflows: the table against its section, the page against the window, and each Stop
// button against the viewport (and the section that holds it).
const measure = (page) => page.evaluate(() => {
  const table = document.getElementById('voices');
  const box = table.parentElement;
  const section = document.getElementById('voices-section').getBoundingClientRect();
  const buttons = [...table.querySelectorAll('button[data-stop]')].map((b) => {
    const r = b.getBoundingClientRect();
    return { id: b.dataset.stop, left: r.left, right: r.right, width: r.width };
  });
  const names = [...table.querySelectorAll('tbody td.c-name')].map((td) => td.getBoundingClientRect().width);
  // A short name's lines (its cell's text height ÷ its line height): one, never broken mid-word
  const shortLines = [...table.querySelectorAll('tbody td.c-name')].filter((td) => td.textContent.length <= 8).map((td) => {
    const r = document.createRange();
    r.selectNodeContents(td);
    return { name: td.textContent, lines: r.getBoundingClientRect().height / parseFloat(getComputedStyle(td).lineHeight) };
  });
  return {
    nameWidth: Math.min(...names), shortLines, tableScroll: table.scrollWidth, boxScroll: box.scrollWidth, boxClient: box.clientWidth,
    pageScroll: document.documentElement.scrollWidth, pageClient: document.documentElement.clientWidth,
    sectionRight: section.right, viewport: window.innerWidth, buttons,
  };
});

async function checkVoicesFit(page, width, voices) {
  await page.setViewportSize({ width, height: 1000 });
  await until(`${voices} voices shown at ${width} px`, 10000,
    () => page.evaluate((n) => document.querySelectorAll('#voices tbody tr').length === n, voices));
  await sleep(300);  // a status poll or two at this width
  const m = await measure(page);
  console.log(`monitor_layout: ${width} px: table ${m.tableScroll} px in a box of ${m.boxClient} (scroll ${m.boxScroll}), ` +
    `names ${m.nameWidth.toFixed(0)} px wide, page ${m.pageScroll}/${m.pageClient}, stop buttons ${m.buttons.map((b) => `${b.left.toFixed(0)}–${b.right.toFixed(0)}`).join(' ')}`);
  if (m.tableScroll > m.boxClient || m.boxScroll > m.boxClient) {
    fail(`at ${width} px the Voices table (${m.tableScroll} px wide) overflows its section (${m.boxClient} px)`);
  }
  if (!(m.nameWidth >= 48)) fail(`at ${width} px the name column is squeezed to ${m.nameWidth} px`);
  // At 375 px (a phone) "stem1" was drawn "ste"/"m1" (new-user pass 29, L5)
  if (m.shortLines.length === 0) fail(`at ${width} px no short name to look at`);
  for (const n of m.shortLines) {
    if (n.lines > 1.5) fail(`at ${width} px the name "${n.name}" is broken over ${n.lines.toFixed(1)} lines`);
  }
  if (m.pageScroll > m.pageClient) fail(`at ${width} px the page scrolls sideways (${m.pageScroll} > ${m.pageClient} px)`);
  if (m.buttons.length !== voices) fail(`at ${width} px ${m.buttons.length} Stop buttons for ${voices} voices`);
  for (const b of m.buttons) {
    if (b.width < 20 || b.left < 0 || b.right > m.viewport || b.right > m.sectionRight) {
      fail(`at ${width} px voice ${b.id}'s Stop button (${b.left.toFixed(0)}–${b.right.toFixed(0)} px) is cut off ` +
        `(viewport ${m.viewport}, section's right edge ${m.sectionRight.toFixed(0)})`);
    }
  }
  // The header with a lost device's long state: the output's line ("portaudio · 44100 Hz · 1024
  // frames") stays one line (it was squeezed into a four-line column at 375 px: new-user pass 28, L7).
  const head = await page.evaluate(() => {
    const st = document.getElementById('devstate');
    const was = st.textContent;
    st.textContent = 'device lost for 2.7 s: PortAudio sees no output device';
    const dev = document.getElementById('device');
    const lines = dev.getBoundingClientRect().height / parseFloat(getComputedStyle(dev).lineHeight);
    const overflow = document.documentElement.scrollWidth > document.documentElement.clientWidth;
    st.textContent = was;
    return { lines, overflow, text: dev.textContent };
  });
  if (head.lines > 1.5 || head.overflow) {
    fail(`at ${width} px the header's "${head.text}" takes ${head.lines.toFixed(1)} lines beside a lost device's state` +
      (head.overflow ? ' and the page scrolls sideways' : ''));
  }
}

async function eqState(page) {
  return page.evaluate(() => {
    const eq = [...document.querySelectorAll('#decks .eq input[type=range]')];
    const levels = [...document.querySelectorAll('#decks input[type=range][id^=level-]')];
    const note = document.getElementById('eq-note');
    return {
      eq: eq.length, eqDisabled: eq.filter((i) => i.disabled).length,
      levels: levels.length, levelsDisabled: levels.filter((i) => i.disabled).length,
      note: note && !note.hidden && note.offsetParent !== null ? note.textContent : '',
    };
  });
}

(async () => {
  const { browser, page } = await openPage({
    viewport: { width: 1280, height: 1000 }, onPageError: (e) => fail(`page error: ${e.message}`),
  });

  // 1. five voices: long names, a fade under way on each (the volume cell's widest form)
  const ids = [1, 2, 3, 101, 102];
  for (const id of ids) {
    await osc(url, '/stemd/load', [id, id % 2 ? 'a_rather_long_stem_name_bass_124bpm_take_3.wav' : 'short.wav']);
    await osc(url, '/stemd/play', [id, 1.0, 1]);
    await osc(url, '/stemd/fade', [id, 0.25, 60]);
  }
  // No error in the console: the browser asked for /favicon.ico, and its 404 was one.
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await sleep(1500);
  if (errors.length) fail(`errors in the page's console: ${errors.join(' | ')}`);
  for (const width of [1280, 1024, 800, 390, 375, 360]) await checkVoicesFit(page, width, ids.length);
  await page.setViewportSize({ width: 1280, height: 1000 });
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  // The last Stop button stops its voice (a click where the button is drawn).
  await page.click('#voices button[data-stop="102"]');
  await until('the Stop button stops voice 102', 10000, () => page.evaluate(() =>
    document.querySelectorAll('#voices tbody tr').length === 4 && !document.querySelector('#voices button[data-stop="102"]')));
  console.log('monitor_layout: Stop in the Voices table stopped voice 102');

  // 2. the EQ: live here, disabled with a note under --disable-filters
  await until('the decks are shown', 10000, () => page.evaluate(() => document.querySelectorAll('#decks .eq input').length === 12));
  let s = await eqState(page);
  console.log(`monitor_layout: EQ applied: ${JSON.stringify(s)}`);
  if (s.eqDisabled !== 0 || s.note) fail(`the EQ is applied, yet the page shows it off: ${JSON.stringify(s)}`);
  await page.goto(urlNoFilters);
  await until('the decks are shown (--disable-filters)', 10000, () => page.evaluate(() => document.querySelectorAll('#decks .eq input').length === 12));
  s = await until('the EQ shown off (--disable-filters)', 10000, async () => {
    const e = await eqState(page);
    return e.eqDisabled === 12 ? e : null;
  });
  console.log(`monitor_layout: --disable-filters: ${JSON.stringify(s)}`);
  if (!s.note.includes('--disable-filters')) fail(`no note saying why the EQ is off: "${s.note}"`);
  if (s.levelsDisabled !== 0) fail(`the level sliders are disabled too: ${JSON.stringify(s)}`);

  // 3. the Media section: the daemon's own listing, then one beside a share that does not
  // answer (the daemon's answer then, as src/web/web_files.cpp words it: a real dead share needs
  // root and FUSE, tests/integration/files_dead_share.sh): its mount point and a symlink into it
  // are shown unreachable, not as links, with the reason once; nothing overflows at 390 px.
  await until('the media root listed', 10000, () => page.$('#files a[data-file="short.wav"]'));
  const why = "the file system mounted at '/share' has not answered for 12 s (the listing of '/share/a' is stuck there past --load-timeout)";
  await page.route('**/api/files?dir=', (route) => route.fulfill({
    status: 200, contentType: 'application/json',
    body: JSON.stringify({ dir: '', parent: null, entries: [
      { name: 'fav', path: 'fav', dir: null, unreachable: why, link: true },
      { name: 'music', path: 'music', dir: true },
      { name: 'share', path: 'share', dir: null, unreachable: why },
      { name: 'short.wav', path: 'short.wav', dir: false, size: 384044 },
    ], truncated: false, read_all: true, scanned: 100000, cap: 1000, skipped: 0, unreachable: 2 }),
  }));
  await page.goto(url);
  const shown = await until('the unreachable entries shown', 10000, () => page.evaluate(() => {
    const rows = [...document.querySelectorAll('#files li.unreachable')];
    return rows.length ? { rows: rows.map((r) => r.textContent), links: document.querySelectorAll('#files a').length,
      dirLink: !!document.querySelector('#files a[data-dir="share"], #files a[data-dir="fav"]'),
      notes: [...document.querySelectorAll('#files li.bad:not(.unreachable)')].map((r) => r.textContent) } : null;
  }));
  console.log(`monitor_layout: a dead share in the Media section: ${JSON.stringify(shown)}`);
  if (shown.rows.join('|') !== 'fav →not answering|sharenot answering') fail(`unreachable rows: ${JSON.stringify(shown)}`);
  if (shown.dirLink || shown.links !== 2) fail(`unreachable entries shown as links: ${JSON.stringify(shown)}`);
  if (shown.notes.length !== 1 || !shown.notes[0].includes(why)) fail(`the reason is not shown once: ${JSON.stringify(shown)}`);
  // A folder refused (504: on a share that does not answer): the reason, and the way back up.
  await page.route('**/api/files?dir=music', (route) => route.fulfill({
    status: 504, contentType: 'application/json',
    body: JSON.stringify({ error: `busy: '/music' is on a file system that does not answer: ${why}` }),
  }));
  await page.click('#files a[data-dir="music"]');
  await until('the refusal shown with a way back', 10000, () => page.$('#files a[data-dir=""]'));
  const refused = await page.textContent('#files');
  if (!refused.includes("busy: '/music' is on a file system that does not answer")) fail(`the refusal: ${refused}`);
  await page.click('#files a[data-dir=""]');
  await until('back up in the root', 10000, () => page.$('#files li.unreachable'));
  console.log(`monitor_layout: a folder refused: "${refused.slice(0, 80)}…" with ../ back to the root`);
  await page.setViewportSize({ width: 390, height: 1000 });
  const wide = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  if (wide[0] > wide[1]) fail(`at 390 px the page scrolls sideways with the reason shown (${wide[0]} > ${wide[1]} px)`);
  await browser.close();
  console.log('monitor_layout: PASS');
})().catch((e) => fail(e.stack || String(e)));
