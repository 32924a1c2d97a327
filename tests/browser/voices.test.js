// The monitor page's voices, levels and its link to the daemon in headless Chromium (a new
// user's pass: pass 21, items 7, 9, 10 and 11).
//   node voices.test.js STEMD WEB_ROOT DIR [SCREENSHOT.png]
// DIR holds media/ (a48.wav and b48.wav, 10 s; hour.wav, 1 h 1 min); the daemons' logs and pids
// go to DIR (monitor_voices.sh kills what is left). stemd runs on the null backend. Checks:
//  1. at 390 px (a phone) a paused voice reads "paused" and the playing ones "playing", their
//     state cells in view; each row has a pause (or resume) button in view, and it pauses and
//     resumes its voice (as the daemon's status says);
//  2. a click in Media on a file while the id under Controls is playing asks first: dismissed,
//     nothing is loaded and the voice plays on; accepted, the file is loaded into that id. A free
//     id loads without a question;
//  3. the deck and master sliders show their level as a number and in dB (in view on the phone),
//     follow /stemd/deck, and have a tick at 1.0 (the datalist #unity);
//  4. a position and a duration of an hour or more read h:mm:ss.s, as stemctl shows them, not cut
//     off at 390 px;
//  5. stemd stopped (SIGSTOP): within 5 s the page greys out the voices and meters, no state
//     reads "playing", the meters are empty, and an Events line says it is not answering; on
//     SIGCONT a line says it is back, not restarted. Killed and started again on the same ports:
//     a line says it is back and restarted, and the page is live again;
//  6. after that restart, the new run's events, its first ones too, though it broadcast more
//     than the page had seen of the old run before the page reconnected.
// Exits 0 pass, 1 fail.
'use strict';
const { harness, openPage } = require('./browser_common');
const { spawn } = require('child_process');
const fs = require('fs');

const [stemd, webRoot, dir, shot] = process.argv.slice(2);
const { fail, sleep, until } = harness('monitor_voices');
let run = 0;

// A daemon on the null backend (its OSC and HTTP ports: 0 = any free one); resolves to
// { pid, url, osc } once its log names the page.
async function startStemd(httpPort = 0, oscPort = 0) {
  const log = `${dir}/stemd${++run}.log`;
  const out = fs.openSync(log, 'w');
  const p = spawn(stemd, ['--backend', 'null', '--osc-port', String(oscPort), '--http-port', String(httpPort),
    '--web-root', webRoot, '--media-root', `${dir}/media`], { stdio: ['ignore', out, out] });
  fs.writeFileSync(`${log}.pid`, String(p.pid));
  const text = await until(`stemd ${run} names its page`, 10000, () => {
    const t = fs.readFileSync(log, 'utf8');
    return /web monitor on http:\/\/\S+/.test(t) && /OSC on udp \S+:\d+/.test(t) ? t : null;
  });
  return { pid: p.pid, url: /web monitor on (http:\/\/\S+?)\/?(\s|$)/.exec(text)[1], osc: Number(/OSC on udp \S+:(\d+)/.exec(text)[1]) };
}

let base = '';
async function osc(address, args) {
  const res = await fetch(`${base}/api/osc`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ address, args }) });
  const j = await res.json();
  if (j.reply !== '/done') fail(`${address} ${JSON.stringify(args)} → ${JSON.stringify(j)}`);
  return j;
}
const status = async () => (await fetch(`${base}/api/status?page=probe`)).json();
const voiceState = async (id) => ((await status()).voices.find((v) => v.id === id) || {}).state;
// /stemd/list's rows (id name path duration_s streamed playing) by id
async function sources() {
  const a = (await osc('/stemd/list', [])).args;
  const m = new Map();
  for (let i = 0; i < a[0]; i++) m.set(a[1 + 6 * i], a[3 + 6 * i]);
  return m;
}

// The page's row of voice `id`: its state cell and buttons, where they are drawn.
const row = (page, id) => page.evaluate((want) => {
  const tr = [...document.querySelectorAll('#voices tbody tr')].find((r) => r.cells[0].textContent === String(want));
  if (!tr) return null;
  tr.scrollIntoView({ block: 'center' });
  // where it is drawn, and whether it is seen there: its left and right ends are not clipped by
  // its cell (overflow: hidden) or covered by anything else
  const box = (el) => {
    if (!el) return null;
    const r = el.getBoundingClientRect();
    const seen = (x) => { const at = document.elementFromPoint(x, r.top + r.height / 2); return !!at && el.contains(at); };
    return { text: el.textContent, left: r.left, right: r.right, width: r.width, shown: el.offsetParent !== null && seen(r.left + 2) && seen(r.right - 2) };
  };
  const pos = tr.cells[3];
  return { text: tr.textContent, posClipped: pos.scrollWidth > pos.clientWidth, state: box(tr.querySelector('td.st')), pause: box(tr.querySelector('button[data-pause]')),
    resume: box(tr.querySelector('button[data-resume]')), stop: box(tr.querySelector('button[data-stop]')), viewport: window.innerWidth };
}, id);
const inView = (b, vw) => b && b.shown && b.width > 10 && b.left >= 0 && b.right <= vw;

(async () => {
  let d = await startStemd();
  base = d.url;
  console.log(`monitor_voices: stemd ${d.pid}, page ${d.url}, OSC ${d.osc}`);
  for (const [id, file] of [[100, 'a48.wav'], [101, 'b48.wav'], [102, 'hour.wav']]) {
    await osc('/stemd/load', [id, file]);
  }
  await until('the three files loaded', 10000, async () => (await sources()).size === 3);
  await osc('/stemd/play', [100, 1.0, 1]);
  await osc('/stemd/play', [101, 1.0, 1]);
  await osc('/stemd/play', [102, 1.0, 0, 3650]);  // 1:00:50 of 1:01:00
  const { browser, page } = await openPage({
    viewport: { width: 390, height: 900 }, onPageError: (e) => fail(`page error: ${e.message}`),
  });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(m.text())) errors.push(m.text()); });
  await page.goto(d.url);
  await until('three voices shown', 10000, () => page.evaluate(() => document.querySelectorAll('#voices tbody tr').length === 3));

  // 1. a phone: the state stays in view; pause and resume from the page
  await osc('/stemd/pause', [101]);
  let r = await until('voice 101 reads paused on the phone', 5000, async () => {
    const x = await row(page, 101);
    return x && x.state && x.state.text === 'paused' ? x : null;
  });
  if (!inView(r.state, r.viewport)) fail(`at 390 px voice 101's state "paused" is not in view: ${JSON.stringify(r.state)}`);
  if (!inView(r.resume, r.viewport)) fail(`at 390 px the paused voice 101 has no resume button in view: ${JSON.stringify(r)}`);
  const r100 = await row(page, 100);
  if (!(r100.state && r100.state.text === 'playing' && inView(r100.state, r100.viewport))) fail(`voice 100's state at 390 px: ${JSON.stringify(r100)}`);
  if (!inView(r100.pause, r100.viewport) || !inView(r100.stop, r100.viewport)) fail(`voice 100's pause and stop buttons at 390 px: ${JSON.stringify(r100)}`);
  console.log(`monitor_voices: 390 px: 101 "${r.state.text}" at ${r.state.left.toFixed(0)}–${r.state.right.toFixed(0)} px, 100 "${r100.state.text}", ` +
    `pause ${r100.pause.left.toFixed(0)}–${r100.pause.right.toFixed(0)}, stop ${r100.stop.left.toFixed(0)}–${r100.stop.right.toFixed(0)} of ${r100.viewport}`);
  await page.click('#voices button[data-pause="100"]');
  await until('the pause button paused voice 100', 5000, async () => (await voiceState(100)) === 'paused');
  await until('voice 100 reads paused with a resume button', 5000, async () => {
    const x = await row(page, 100);
    return x && x.state.text === 'paused' && inView(x.resume, x.viewport);
  });
  await page.click('#voices button[data-resume="100"]');
  await until('the resume button resumed voice 100', 5000, async () => (await voiceState(100)) === 'playing');
  await page.click('#voices button[data-resume="101"]');
  await until('the resume button resumed voice 101', 5000, async () => (await voiceState(101)) === 'playing');
  console.log('monitor_voices: pause and resume from the page: done, as the daemon says');

  // 4. an hour or more: h:mm:ss.s
  r = await row(page, 102);
  if (!/1:0[01]:\d\d\.\d \/ 1:01:00\.0/.test(r.text)) fail(`voice 102 (1 h 1 min, at 1:00:50) reads "${r.text}"`);
  if (r.posClipped) fail(`at 390 px voice 102's position "${r.text}" is cut off`);
  console.log(`monitor_voices: a 1-h file's row: "${r.text}"`);

  // 2. Media: a click on a file while the id under Controls plays asks first
  await page.fill('#load-id', '100');
  await until('the Media section lists b48.wav', 5000, () => page.$('#files a[data-file="b48.wav"]'));
  let asked = '';
  page.once('dialog', (dlg) => { asked = dlg.message(); dlg.dismiss(); });
  await page.click('#files a[data-file="b48.wav"]');
  await sleep(700);
  if (!asked) fail('a click on b48.wav while id 100 plays a48 loaded it without asking');
  if (!asked.includes('100') || !asked.includes('a48')) fail(`the question does not name the id and what it plays: "${asked}"`);
  if (!(await sources()).get(100).endsWith('/a48.wav') || (await voiceState(100)) !== 'playing') fail('dismissed, yet id 100 changed');
  console.log(`monitor_voices: asked "${asked}", dismissed: id 100 still plays a48; the page says "${await page.textContent('#reply')}"`);
  page.once('dialog', (dlg) => dlg.accept());
  await page.click('#files a[data-file="b48.wav"]');
  await until('accepted: b48.wav is loaded into id 100', 5000, async () => (await sources()).get(100).endsWith('/b48.wav'));
  await page.fill('#load-id', '7');
  page.once('dialog', (dlg) => { dlg.dismiss(); fail(`a load into the free id 7 asked: "${dlg.message()}"`); });
  await page.click('#files a[data-file="a48.wav"]');
  await until('a48.wav is loaded into the free id 7 without a question', 5000, async () => ((await sources()).get(7) || '').endsWith('/a48.wav'));
  page.removeAllListeners('dialog');
  await osc('/stemd/play', [100, 1.0, 1]);

  // 3. the level sliders: the value, in dB, and unity ticked
  const level = (id) => page.evaluate((x) => {
    const out = document.getElementById(`${x}-value`);
    const input = document.getElementById(x);
    const r = out && out.getBoundingClientRect();
    return { text: out ? out.textContent : null, right: r ? r.right : 0, width: r ? r.width : 0, viewport: window.innerWidth,
      unity: !!(input.list && [...input.list.options].some((o) => Number(o.value) === 1)) };
  }, id);
  let l = await until('deck A\'s level reads 1.00 · 0.0 dB', 5000, async () => {
    const x = await level('level-A');
    return x.text === '1.00 · 0.0 dB' ? x : null;
  });
  if (!l.unity) fail('deck A\'s slider has no tick at 1.0 (unity)');
  if (!(l.width > 20 && l.right <= l.viewport)) fail(`deck A's level is not in view at 390 px: ${JSON.stringify(l)}`);
  await osc('/stemd/deck', ['A', 0.5]);
  await osc('/stemd/master', [1.5]);
  await until('deck A reads 0.50 · −6.0 dB', 5000, async () => (await level('level-A')).text === '0.50 · −6.0 dB');
  l = await until('the master reads 1.50 · +3.5 dB', 5000, async () => {
    const x = await level('level-master');
    return x.text === '1.50 · +3.5 dB' ? x : null;
  });
  if (!l.unity) fail('the master slider has no tick at 1.0 (unity)');
  console.log(`monitor_voices: levels: deck A "${(await level('level-A')).text}", master "${l.text}", unity ticked`);
  await osc('/stemd/master', [1.0]);
  if (shot) await page.screenshot({ path: shot, fullPage: true });

  // 5. stemd gone and back
  const gone = () => page.evaluate(() => {
    const states = [...document.querySelectorAll('#voices td.st')].map((td) => td.textContent);
    const section = getComputedStyle(document.getElementById('voices-section'));
    const mixer = getComputedStyle(document.getElementById('mixer'));
    return {
      offline: document.body.classList.contains('offline'), states,
      greyed: section.filter.includes('grayscale') && mixer.filter.includes('grayscale'),
      liveMeters: document.querySelectorAll('#decks .meter .rms, #decks .meter .peak').length,
      events: [...document.querySelectorAll('#events li')].map((li) => li.textContent),
    };
  });
  const isGone = (g) => g.offline && g.greyed && g.liveMeters === 0 && g.states.length > 0 && !g.states.includes('playing') &&
    g.events.some((e) => e.includes('not answering'));
  process.kill(d.pid, 'SIGSTOP');
  let g = await until('a stopped stemd shown gone: greyed, no "playing", meters empty, an Events line', 8000, async () => {
    const x = await gone();
    return isGone(x) ? x : null;
  });
  console.log(`monitor_voices: stopped: states ${JSON.stringify(g.states)}, event "${g.events.find((e) => e.includes('not answering'))}"`);
  process.kill(d.pid, 'SIGCONT');
  g = await until('the page live again after SIGCONT', 8000, async () => {
    const x = await gone();
    return !x.offline && x.states.includes('playing') && x.events.some((e) => e.includes('is back')) ? x : null;
  });
  let back = g.events.find((e) => e.includes('is back'));
  if (!back.includes('not restarted')) fail(`continued, not restarted, yet the page says "${back}"`);
  console.log(`monitor_voices: continued: "${back}"`);
  // The page's events socket is held closed across the restart (its reconnect made a dummy) until
  // the new run has broadcast more events than the page saw of the old one.
  const old = await page.evaluate(() => {
    window.realWebSocket = window.WebSocket;
    window.WebSocket = function held() { return {}; };
    return { seq: window.stemdMonitor.lastSeq, shown: window.stemdMonitor.events.length };
  });
  process.kill(d.pid, 'SIGTERM');
  g = await until('a killed stemd shown gone', 8000, async () => {
    const x = await gone();
    return isGone(x) ? x : null;
  });
  await until('the killed stemd has exited', 10000, () => {
    try {
      process.kill(d.pid, 0);
      return false;
    } catch (e) {
      return true;
    }
  });
  const port = Number(new URL(d.url).port);
  d = await startStemd(port, d.osc);
  g = await until('the page live again after a restart', 10000, async () => {
    const x = await gone();
    return !x.offline && x.liveMeters > 0 && x.events.filter((e) => e.includes('is back')).length === 2 ? x : null;
  });
  back = g.events.find((e) => e.includes('is back'));  // the newest first
  if (!/restarted \(up /.test(back) || back.includes('not restarted')) fail(`restarted, yet the page says "${back}"`);
  console.log(`monitor_voices: restarted: "${back}"`);
  // 6. The new run's events, its first ones too: the page had seen `old.seq` events of the old run
  // and asked for those after that number; the new run's first ones were missed once it had more
  // (closing note 29). Its events now carry their run: another run's page gets all that is kept.
  if (!(old.seq > 0)) fail(`the page saw no numbered event of the first run: ${JSON.stringify(old)}`);
  for (let i = 0; i < old.seq + 3; i++) await osc('/stemd/master', [1.0]);
  await page.evaluate(() => { window.WebSocket = window.realWebSocket; connectEvents(); });
  const want = Math.min(old.seq + 3, 64);  // the backlog keeps the last 64
  const newRun = () => page.evaluate((n) => window.stemdMonitor.events.slice(n).map((e) => e.seq), old.shown);
  let fresh = [];
  for (const end = Date.now() + 10000; Date.now() < end && fresh.length < want; await sleep(100)) fresh = await newRun();
  if (fresh.length < want) {
    fail(`after the restart the page shows ${fresh.length} of the new run's ${old.seq + 3} events (numbers ` +
      `${fresh.join(' ')}): it had seen ${old.seq} of the old run`);
  }
  await sleep(500);  // anything that would come twice
  fresh = await newRun();
  if (new Set(fresh).size !== fresh.length) fail(`an event of the new run shown twice (numbers ${fresh.join(' ')})`);
  console.log(`monitor_voices: the new run's events shown: ${fresh.length} (numbers ${fresh[0]}–${fresh[fresh.length - 1]}), the page had seen ${old.seq} of the old run`);
  if (errors.length) fail(`errors in the page's console: ${errors.join(' | ')}`);
  await browser.close();
  process.kill(d.pid, 'SIGTERM');
  console.log('monitor_voices: PASS');
})().catch((e) => fail(e.stack || String(e)));
