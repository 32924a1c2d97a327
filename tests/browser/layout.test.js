// The monitor page's layout and its EQ controls in headless Chromium (an outside test pass).
//   node layout.test.js URL URL_NO_FILTERS [SCREENSHOT.png]
// URL: a daemon on the null backend with the test's files in --media-root (long.wav, short.wav);
// URL_NO_FILTERS: one started with --disable-filters. Checks:
//  1. at 1280×1000, with five voices playing (long file names, fades under way: the widest
//     cells), the Voices table fits its section (its scrollWidth ≤ the section's clientWidth), the
//     page has no horizontal scrollbar, and every Stop button lies inside the viewport and
//     stops its voice when clicked; the names keep a column of their own (≥ 48 px); the same at
//     1024, 800 and 390 px wide (a phone);
//  2. the EQ sliders are live on the first daemon and disabled, with a note naming
//     --disable-filters, on the second (its EQ is answered and ignored); the level sliders stay live.
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
  return {
    nameWidth: Math.min(...names), tableScroll: table.scrollWidth, boxScroll: box.scrollWidth, boxClient: box.clientWidth,
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
  if (m.pageScroll > m.pageClient) fail(`at ${width} px the page scrolls sideways (${m.pageScroll} > ${m.pageClient} px)`);
  if (m.buttons.length !== voices) fail(`at ${width} px ${m.buttons.length} Stop buttons for ${voices} voices`);
  for (const b of m.buttons) {
    if (b.width < 20 || b.left < 0 || b.right > m.viewport || b.right > m.sectionRight) {
      fail(`at ${width} px voice ${b.id}'s Stop button (${b.left.toFixed(0)}–${b.right.toFixed(0)} px) is cut off ` +
        `(viewport ${m.viewport}, section's right edge ${m.sectionRight.toFixed(0)})`);
    }
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
  for (const width of [1280, 1024, 800, 390]) await checkVoicesFit(page, width, ids.length);
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
  await browser.close();
  console.log('monitor_layout: PASS');
})().catch((e) => fail(e.stack || String(e)));
