// The monitor page's Health and Media panels as a new user meets them (new-user pass 24, LOW 4, 8
// and 9), in headless Chromium against stemd on the null backend without --media-root.
//   node panels.test.js URL [SCREENSHOT.png]
// Checks:
//  1. Media: one line saying how to set a media root (--media-root DIR, or media-root in the config
//     file), in view and not an error; no "Click a file…" hint over an empty list, no red refusal;
//  2. tempo: "no tempo set" while nobody set one (it showed --bpm's default, "120.00 bpm · beat …",
//     as if the user had); once /set_tempo 128 is sent, "128.00 bpm · beat …";
//  3. uptime: as stemctl shows it, days from 24 h on — "21d 00:00:00" after three weeks (it read
//     "504:00:00.0"), "1d 01:01:01", and "1:02:03" below a day. The daemon's status is the real
//     one with uptime_s set (Chromium's request interception): nobody waits three weeks.
//  4. voices past the status's list (outside pass 25, N4: the daemon lists the first 500 by id and
//     counts the rest in voices_total, voices_cut): the count beside Voices is all of them, the
//     table ends with "… and K more", and a name the daemon cut (name_cut) says so in its tooltip.
//     The status is the real one with its voices replaced (interception again): no 4,000 loads.
//  5. the device beside "connected" (outside pass 26, user M2: a phone's first screen said
//     "connected" in green while the device was lost): "device lost for 3.9 s: REASON" in red
//     while it is lost (the status's device fields replaced), "device lost 2 times since the
//     start" once it runs again (", the last 0:21:03 ago for 6.0 s" with the last loss's fields:
//     user M1), nothing for a device never lost;
//  6. the EQ sliders' values shown beside them ("50 flat"; a title is not seen on a phone);
//  7. the OSC form's fields are empty examples (user L3: one tap on Send played a test tone):
//     Send with them empty sends nothing and says to type an address.
// Exits 0 pass, 1 fail.
'use strict';
const { harness, openPage } = require('./browser_common');

const [url, shot] = process.argv.slice(2);
const { fail, until } = harness('monitor_panels');

async function osc(address, args) {
  const res = await fetch(`${url}/api/osc`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ address, args }) });
  const j = await res.json();
  if (j.reply !== '/done') fail(`${address} ${JSON.stringify(args)} → ${JSON.stringify(j)}`);
  return j;
}

const text = (page, id) => page.evaluate((i) => document.getElementById(i).textContent, id);

(async () => {
  const { browser, page } = await openPage({
    viewport: { width: 1280, height: 1000 }, onPageError: (e) => fail(`page error: ${e.message}`),
  });
  let uptime = null;  // set: the status's uptime_s is replaced by it
  let voices = null;  // set: the status's voices, voices_total and voices_cut are replaced by it
  let device = null;  // set: merged into the status's fields (device, device_lost_s, …)
  await page.route('**/api/status*', async (route) => {
    const res = await route.fetch();
    const j = await res.json();
    if (uptime !== null) j.status.uptime_s = uptime;
    if (voices !== null) Object.assign(j, voices);
    if (device !== null) Object.assign(j.status, device);
    await route.fulfill({ response: res, json: j });
  });
  await page.goto(url);
  await until('the page is connected', 10000, async () => (await text(page, 'conn')) === 'connected');

  // 1. the Media panel without a media root
  const media = await until('the Media panel says there is no media root', 10000, () => page.evaluate(() => {
    const none = document.getElementById('files-none');
    if (!none || none.hidden || none.offsetParent === null) return null;
    const r = none.getBoundingClientRect();
    const section = document.getElementById('media').getBoundingClientRect();
    return { text: none.textContent, inside: r.left >= section.left && r.right <= section.right && r.height > 0,
      hint: !document.getElementById('files-hint').hidden, bad: document.querySelectorAll('#files .bad').length,
      items: document.querySelectorAll('#files li').length, color: getComputedStyle(none).color };
  }));
  console.log(`monitor_panels: Media: ${JSON.stringify(media)}`);
  if (!media.text.includes('--media-root DIR') || !media.text.includes('media-root = "DIR"')) {
    fail(`the Media panel does not say how to set a media root: "${media.text}"`);
  }
  if (!media.inside) fail('the media-root line is not inside its panel');
  if (media.hint) fail('the "Click a file" hint is shown over a list that cannot have files');
  if (media.bad || media.items) fail(`the list shows ${media.items} items (${media.bad} red) instead of the one line`);

  // 2. the tempo: none set, then set
  const none = await until('the tempo row filled', 10000, async () => {
    const t = await text(page, 'tempo');
    return t && t !== '–' ? t : null;
  });
  console.log(`monitor_panels: tempo before /set_tempo: "${none}"`);
  if (none !== 'no tempo set') fail(`no tempo was set, yet the page shows "${none}"`);
  await osc('/set_tempo', [128]);
  const set = await until('the tempo shown once set', 10000, async () => {
    const t = await text(page, 'tempo');
    return /^128\.00 bpm · beat [0-9.]+/.test(t) ? t : null;
  });
  console.log(`monitor_panels: tempo after /set_tempo 128: "${set}"`);

  // 3. the uptime, as stemctl's fmt_uptime writes it
  for (const [s, want] of [[21 * 86400, '21d 00:00:00'], [86400 + 3661, '1d 01:01:01'], [3723.9, '1:02:03']]) {
    uptime = s;
    const got = await until(`the uptime of ${s} s shown`, 10000, async () => {
      const t = await text(page, 'uptime');
      return t === want ? t : null;
    });
    console.log(`monitor_panels: uptime ${s} s reads "${got}"`);
  }

  // 4. more voices than the status lists, and a name cut
  const voice = (id, name, cut) => ({ id, name, position_s: 1, duration_s: 10, ring_fill: 1, streamed: false, underruns: 0,
    deck: 'A', volume: 1, volume_now: 1, fade_s: 0, loop: true, state: 'playing', ...(cut ? { name_cut: true } : {}) });
  voices = { voices: [voice(1, 'one', false), voice(2, `${'x'.repeat(64)}…`, true)], voices_total: 4000, voices_cut: 3998 };
  const shown = await until('the voices past the list counted', 10000, () => page.evaluate(() => {
    const more = document.querySelector('#voices tbody tr.more');
    if (!more) return null;
    const names = [...document.querySelectorAll('#voices tbody td.c-name')].map((td) => td.title);
    return { count: document.getElementById('nvoices').textContent, more: more.textContent, names,
      rows: document.querySelectorAll('#voices tbody tr').length };
  }));
  console.log(`monitor_panels: voices: ${JSON.stringify(shown)}`);
  if (shown.count !== '(4000)') fail(`the count beside Voices reads "${shown.count}", not (4000)`);
  if (!shown.more.includes('… and 3998 more') || shown.rows !== 3) {
    fail(`the table does not end with "… and 3998 more" after its 2 rows: ${shown.rows} rows, "${shown.more}"`);
  }
  if (shown.names[0] !== 'one' || !/cut: .*whole name/.test(shown.names[1])) {
    fail(`the cut name's tooltip does not say it is cut: ${JSON.stringify(shown.names)}`);
  }
  voices = null;

  // 5. the device's state beside "connected"
  const devstate = () => page.evaluate(() => {
    const e = document.getElementById('devstate');
    return { text: e.textContent, cls: e.className, seen: e.offsetParent !== null };
  });
  let d = await devstate();
  if (d.text !== '') fail(`a device never lost is shown as "${d.text}"`);
  device = { device: 'lost', device_lost_s: 3.9, device_error: 'the output stream is no longer active', device_losses: 1 };
  d = await until('the lost device shown', 10000, async () => {
    const x = await devstate();
    return x.text.startsWith('device lost') ? x : null;
  });
  console.log(`monitor_panels: device lost: ${JSON.stringify(d)}`);
  if (d.text !== 'device lost for 3.9\u00a0s: the output stream is no longer active' || d.cls !== 'bad' || !d.seen) {
    fail(`the lost device is not shown in red beside "connected": ${JSON.stringify(d)}`);
  }
  device = { device: 'running', device_losses: 2 };
  d = await until('the losses shown', 10000, async () => {
    const x = await devstate();
    return x.text.includes('times') ? x : null;
  });
  if (d.text !== 'device lost 2 times since the start' || d.cls !== 'warn') fail(`losses shown as ${JSON.stringify(d)}`);
  // The last loss, when and for how long (user M1: a week-long show's losses were only counted).
  device = { device: 'running', device_losses: 2, device_last_loss_age_s: 1263, device_last_loss_s: 6.04 };
  d = await until('the last loss shown', 10000, async () => {
    const x = await devstate();
    return x.text.includes('the last') ? x : null;
  });
  if (d.text !== 'device lost 2 times since the start, the last 0:21:03 ago for 6.0\u00a0s' || d.cls !== 'warn') {
    fail(`the last loss shown as ${JSON.stringify(d)}`);
  }
  device = null;

  // 6. the EQ sliders' values
  const eq = await page.evaluate(() => [...document.querySelectorAll('#decks .eq output')].map((o) => o.textContent));
  console.log(`monitor_panels: EQ values ${JSON.stringify(eq)}`);
  if (eq.length !== 12 || eq.some((t) => t !== '50 flat')) fail(`the EQ sliders' values are not shown: ${JSON.stringify(eq)}`);

  // 7. the OSC form: empty examples; Send with them sends nothing
  const form = await page.evaluate(() => ({ address: document.getElementById('osc-address').value,
    args: document.getElementById('osc-args').value, hint: document.getElementById('osc-address').placeholder }));
  if (form.address !== '' || form.args !== '' || !form.hint) fail(`the OSC form is filled in: ${JSON.stringify(form)}`);
  let posted = 0;
  page.on('request', (r) => { if (r.url().includes('/api/osc')) ++posted; });
  await page.click('#osc-form button, #osc-form input[type=submit]');
  const reply = await until('the empty Send answered', 5000, async () => {
    const t = await text(page, 'reply');
    return t.includes('type an OSC address') ? t : null;
  });
  if (posted !== 0) fail(`an empty Send posted ${posted} request(s)`);
  console.log(`monitor_panels: empty Send: "${reply}"`);
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  await browser.close();
  console.log('monitor_panels: PASS');
})().catch((e) => fail(e.stack || String(e)));
