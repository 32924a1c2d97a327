// The monitor page open across a lost device's hand-over to a fresh image of stemd
// (monitor_handover.sh starts stemd on the JACK test bed and kills the server).
//   node handover.test.js URL DIR
// Once a page is connected it writes DIR/ready; the script then loses the device and, once the
// new image runs, writes DIR/handed; a second page is opened then (DIR/late_ready), and the script
// brings the device back. Both pages, never reloaded, must show "/stemd/device/lost …" and then
// "/stemd/device/restored …" in their Events, each once, and no event twice (outside pass 28,
// user L4: the loss was not shown — the first page's socket closes with the old image, and
// whether the loss is written before is a race; the new image did not know of it at all).
// Exits 0 pass, 1 fail.
'use strict';
const { harness, openPage } = require('./browser_common');
const fs = require('fs');
const path = require('path');

const [url, dir] = process.argv.slice(2);
const { fail, sleep, until } = harness('monitor_handover');

// The Events lines of a page, oldest first.
const lines = (p) => p.evaluate(() => [...document.querySelectorAll('#events li')].map((li) => li.textContent).reverse());
const connected = (p) => until('the page connected', 20000,
  () => p.evaluate(() => document.getElementById('conn').textContent === 'connected'));

// `name`'s Events show the loss, then the return, each once, and no event twice.
async function showsLossThenReturn(p, name) {
  await until(`"/stemd/device/restored" in ${name}'s Events`, 90000,
    async () => (await lines(p)).some((t) => t.includes('/stemd/device/restored')));
  await sleep(1000);  // anything that would come twice
  const all = await lines(p);
  console.log(`monitor_handover: ${name}'s Events, oldest first:\n  ${all.join('\n  ')}`);
  const lost = all.filter((t) => t.includes('/stemd/device/lost'));
  const back = all.filter((t) => t.includes('/stemd/device/restored'));
  if (lost.length !== 1) fail(`${name}: "/stemd/device/lost" shown ${lost.length} times (once wanted)`);
  if (back.length !== 1) fail(`${name}: "/stemd/device/restored" shown ${back.length} times (once wanted)`);
  if (all.indexOf(lost[0]) > all.indexOf(back[0])) fail(`${name}: the loss is shown after the return`);
  if (lost[0].slice(0, 12) > back[0].slice(0, 12)) fail(`${name}: the loss's time (${lost[0]}) is after the return's`);
  const seqs = (await p.evaluate(() => window.stemdMonitor.events.map((e) => e.seq))).filter((n) => n !== undefined);
  if (new Set(seqs).size !== seqs.length) fail(`${name}: an event shown twice (numbers ${seqs.join(' ')})`);
}

(async () => {
  const errors = [];
  const { browser, page } = await openPage({
    viewport: { width: 1280, height: 900 }, onPageError: (e) => errors.push(String(e)),
  });
  try {
    // A: open across the hand-over (its event socket closes with the old image, and must
    // reconnect by itself).
    await page.goto(`${url}/`);
    await connected(page);
    await sleep(1500);  // its event socket open
    fs.writeFileSync(path.join(dir, 'ready'), '');
    // B: opened while the new image waits for the device (after the loss: it had no socket then).
    await until('the hand-over (DIR/handed)', 30000, () => fs.existsSync(path.join(dir, 'handed')));
    const late = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    late.on('pageerror', (e) => errors.push(String(e)));
    await late.goto(`${url}/`);
    await connected(late);
    await sleep(1500);
    fs.writeFileSync(path.join(dir, 'late_ready'), '');
    await showsLossThenReturn(page, 'the page open across the hand-over');
    await showsLossThenReturn(late, 'the page opened while the device was away');
    if (errors.length) fail(`page errors: ${errors.join('; ')}`);
    console.log('monitor_handover: both pages showed the loss and the return (the first reconnected by itself)');
  } finally {
    await browser.close();
  }
})().catch((e) => fail(e.stack || String(e)));
