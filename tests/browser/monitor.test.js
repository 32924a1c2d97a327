// The web monitor in a real browser (issue 16): Debian's chromium driven by playwright-core.
//   node monitor.test.js URL STEMCTL OSC_PORT STEMD_PID TONE_WAV [SCREENSHOT.png]
// Checks, against a daemon playing on the JACK test bed (monitor_browser.sh starts it):
//  1. the page loads and shows the status (device line, budget);
//  2. the Media section lists --media-root; a click on a listed file loads it (checked through
//     OSC: stemctl list --json), the Play button starts it (stemctl voices --json), and the deck
//     and master meters move;
//  3. the worklet receives the mix: a 1 kHz test tone at −12 dBFS, its frequency and level
//     measured in the page (what the worklet played);
//  4. the daemon → browser delay at steady state, from the frame stamps (printed as a figure);
//  5. a stalled listener (a WebSocket that never reads) leaves the callback's durations, the
//     daemon's RSS and the page's own stream unchanged, while its queue drops the oldest
//     (counted). The callback is compared with itself in the same run, in windows of 0.6 s of
//     its histogram (/api/status callback_hist): 4 before the listener connects, then 6 rounds
//     of one while a new listener is stalled and one after it has gone (the baseline, 10). The
//     median stalled window's max must stay within 1.25× the baseline's worst window (2.5
//     histogram bins; at least + 250 µs, the noise of ≈ 100-µs windows): one noisy window does not decide (if the stall changed nothing, 4 of the
//     6 stalled windows above all 10 baseline ones has a chance of C(6,4)/C(16,4) ≈ 0.8 %
//     before the margin), a real cost on every callback would move them all. The pooled p99s
//     are printed beside.
// Prints "figure NAME value" lines; exits 0 pass, 1 fail.
'use strict';
const { harness, openPage } = require('./browser_common');
const { execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');

const [url, stemctl, oscPort, pid, toneWav, shot] = process.argv.slice(2);  // toneWav: in --media-root as tone.wav
const { fail, sleep, until } = harness('monitor_browser');
const ctl = (...args) => execFileSync(stemctl, ['--port', oscPort, ...args], { encoding: 'utf8' });
const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

// The callback's durations between two cumulative histograms ([[upper ns, count]…], bins in
// order): the counts, p99 and max (upper bin edges, in µs).
function mergeCounts(a, b) {
  const m = new Map(a);
  for (const [u, c] of b) m.set(u, (m.get(u) || 0) + c);
  return [...m.entries()].sort((x, y) => x[0] - y[0]);
}
function windowStats(h0, h1) {
  const before = new Map(h0);
  const counts = h1.map(([u, c]) => [u, c - (before.get(u) || 0)]).filter(([, c]) => c > 0);
  const n = counts.reduce((a, [, c]) => a + c, 0);
  const want = Math.floor(0.99 * (n - 1)) + 1;
  let seen = 0, p99 = 0;
  for (const [u, c] of counts) {
    seen += c;
    if (seen >= want) { p99 = u; break; }
  }
  return { counts, n, p99Us: p99 / 1000, maxUs: n ? counts[counts.length - 1][0] / 1000 : 0 };
}

// A listener that asks for the audio and never reads: the daemon's socket buffer fills, then its
// queue for this listener.
function stalledListener(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write('GET /ws/audio HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      s.once('data', (d) => { s.pause(); resolve({ s, head: d.toString() }); });
    });
    s.setRecvBufferSize && s.setRecvBufferSize(4096);
    s.on('error', reject);
  });
}

(async () => {
  const { browser, page } = await openPage({
    viewport: { width: 1280, height: 900 }, args: ['--autoplay-policy=no-user-gesture-required'],
    onPageError: (e) => console.error('page error:', e.message),
  });
  await page.goto(url);
  // 1. status
  await until('the page shows the status', 10000, () => page.evaluate(() => document.getElementById('device').textContent.includes('Hz')));
  const budget = await page.textContent('#budget');
  console.log(`monitor_browser: status shown: device "${await page.textContent('#device')}", budget ${budget} µs`);
  // No tempo set: said so (new-user pass 24); once one is, the beat clock.
  const tempo = await page.textContent('#tempo');
  if (tempo !== 'no tempo set') fail(`no tempo was set, yet the page shows "${tempo}"`);
  ctl('-q', 'send', '/set_tempo', 'f:120');
  await until('the page shows the beat clock', 10000, async () => /^120\.00 bpm · beat /.test(await page.textContent('#tempo')));

  // 2. a button starts a file; checked through OSC; meters move
  await page.fill('#load-id', '7');
  await until('the Media section lists tone.wav', 5000, () => page.$('#files a[data-file="tone.wav"]'));
  await page.click('#files a[data-file="tone.wav"]');
  const loaded = await until('stemctl lists id 7 loaded from the click', 10000, () => {
    const l = JSON.parse(ctl('list', '--json'));
    return l.find((x) => x.id === 7 && x.path === toneWav) ? l : null;
  });
  console.log(`monitor_browser: a click on tone.wav in the Media section → stemctl list: ${JSON.stringify(loaded)}`);
  await until('the page logs the load event', 5000, () => page.evaluate(() => stemdMonitor.events.some((e) => e.event === '/stemd/source/loaded' && e.args[0] === 7)));
  await page.check('#loop');
  await page.click('#play-btn');
  const voices = await until('stemctl sees voice 7 playing', 5000, () => {
    const v = JSON.parse(ctl('voices', '--json'));
    return v.find((x) => x.id === 7) ? v : null;
  });
  console.log(`monitor_browser: play button → stemctl voices: ${JSON.stringify(voices)}`);
  // id 7 plays on deck D (ids below 100 do, as in the crowdstream dialect)
  const meters = await until('the voice\'s deck and the master meters move', 5000, () => page.evaluate(() => {
    const s = stemdMonitor.status;
    const v = s && s.voices.find((x) => x.id === 7);
    const d = v && s.decks.find((x) => x.name === v.deck);
    return d && d.meter.rms_db > -30 && s.master.meter.peak_db > -30 ? [d.name, d.meter, s.master.meter] : null;
  }));
  console.log(`monitor_browser: meters: deck ${meters[0]} rms ${meters[1].rms_db.toFixed(1)} dBFS, master peak ${meters[2].peak_db.toFixed(1)} dBFS`);
  await until('the voice shows in the page with its ring bar', 3000, () => page.evaluate(() => document.querySelectorAll('#voices tbody tr').length > 0));
  ctl('stop', '7');

  // 3. the worklet receives the mix: a 1 kHz tone at −12 dBFS
  await page.click('#listen-btn');
  await until('the player runs', 10000, () => page.evaluate(() => stemdMonitor.player && stemdMonitor.player.stats && stemdMonitor.player.stats.playing));
  ctl('tone', '1000', '-12', '90');
  await sleep(1500);
  const heard = await until('the page hears 1 kHz at −12 dBFS', 10000, () => page.evaluate(() => {
    const s = stemdMonitor.player.stats;
    const db = 20 * Math.log10(Math.max(s.peak, 1e-9));
    return Math.abs(s.freqHz - 1000) < 20 && Math.abs(db + 12) < 1 ? { freq: s.freqHz, db } : null;
  }));
  console.log(`monitor_browser: the worklet played ${heard.freq.toFixed(1)} Hz at ${heard.db.toFixed(2)} dBFS peak`);

  // 4. delay at steady state
  await sleep(3000);
  const delays = [];
  for (let i = 0; i < 20; i++) {
    delays.push(await page.evaluate(() => stemdMonitor.player.stats.delayMs));
    await sleep(100);
  }
  delays.sort((a, b) => a - b);
  const st = await page.evaluate(() => stemdMonitor.player.stats);
  console.log(`figure monitor_delay_ms median=${delays[10].toFixed(1)} max=${delays[19].toFixed(1)} target_ms=${st.targetMs.toFixed(1)} fill_ms=${st.fillMs.toFixed(1)} jitter_ms=${st.jitterMs.toFixed(2)}`);
  if (!(delays[10] > 0 && delays[10] < 1000)) fail(`implausible delay ${delays[10]} ms`);
  if (shot) {  // for the docs: a looped voice on deck A at −10 dB beside the tone
    ctl('load', '100', toneWav);
    ctl('play', '100', '--volume', '0.3', '--loop');
    await sleep(1500);
    await page.screenshot({ path: shot, fullPage: true });
    ctl('stop', '100');
    await sleep(500);
  }

  // 5. a stalled listener. Baseline windows before it connects; then rounds of a window while
  // one is stalled (its queue dropping) and one after it has gone, so that the shared machine's
  // load, which comes in bursts of seconds, weighs on both alike.
  const hist = () => page.evaluate(async () => (await (await fetch('/api/status?page=probe')).json()).callback_hist);
  const dropped = () => page.evaluate(async () => (await (await fetch('/api/status?page=probe')).json()).monitor.audio_dropped);
  const measure = async (ms) => {
    const h0 = await hist();
    await sleep(ms);
    return windowStats(h0, await hist());
  };
  const base = [];
  for (let i = 0; i < 4; i++) base.push(await measure(600));
  const rss0 = rssKb();
  const under0 = st.underruns;
  // Each round a new listener that never reads (one that read before would have had its
  // receive window grown by the kernel's autotuning to megabytes: it would take long to stall).
  const stalled = [];
  let rss1 = 0, rss2 = 0, after = null, st1 = null, stalledGaps = 0;
  const pageGaps = () => page.evaluate(() => stemdMonitor.player.stats.gaps);
  const clockResets = () => page.evaluate(async () => (await (await fetch('/api/status?page=probe')).json()).status.clock_resets);
  for (let round = 0; round < 6; round++) {
    const d0 = await dropped();
    const { s, head } = await stalledListener(Number(new URL(url).port));
    if (!head.startsWith('HTTP/1.1 101')) fail(`the stalled listener was not upgraded: ${head}`);
    await until('the stalled listener\'s queue drops', 20000, async () => (await dropped()) > d0);
    const g0 = await pageGaps();
    const r0 = await clockResets();
    stalled.push(await measure(600));
    // A gap the stream clock explains is not the stalled listener's: a late cycle on a busy
    // machine moves the daemon's frame counter on with the device's time (frame_dll.hpp), and the
    // stamps show that jump (CI, with a build running beside it).
    const g = (await pageGaps()) - g0;
    if (g > 0 && (await clockResets()) > r0) {
      console.log(`monitor_browser: ${g} page gaps in a window where the stream clock jumped (clock_resets): not counted`);
    } else {
      stalledGaps += g;
    }
    if (round === 0) rss1 = rssKb();
    if (round === 5) {
      rss2 = rssKb();
      after = await page.evaluate(async () => (await (await fetch('/api/status')).json()));
      st1 = await page.evaluate(() => stemdMonitor.player.stats);
    }
    s.destroy();
    await sleep(200);
    base.push(await measure(600));
  }
  // 1.25× the baseline's worst window, and never less than it + 250 µs: windows of ≈ 100 µs move by
  // that much on a shared machine (a run with builds beside it: baseline worst 106, stalled
  // median 147), while a cost the stall puts on every callback (a blocking write, a copy per
  // listener) is milliseconds against the 21.3-ms budget.
  const worst = Math.max(...base.map((w) => w.maxUs));
  const bound = Math.max(1.25 * worst, worst + 250);
  const stalledMax = stalled.map((w) => w.maxUs).sort((a, b) => a - b);
  const medianMax = stalledMax[Math.floor(stalledMax.length / 2)];
  const pooled = (ws) => ws.reduce((a, w) => mergeCounts(a, w.counts), []);
  const baseP99 = windowStats([], pooled(base)).p99Us;
  const stalledP99 = windowStats([], pooled(stalled)).p99Us;
  const fmt = (ws) => ws.map((w) => w.maxUs.toFixed(0)).join(',');
  console.log(`figure monitor_stalled callback_window_max_us baseline=[${fmt(base.slice(0, 4))}|${fmt(base.slice(4))}] stalled=[${fmt(stalled)}] ` +
    `bound=${bound.toFixed(0)} p99_us baseline=${baseP99.toFixed(0)} stalled=${stalledP99.toFixed(0)} ` +
    `rss_kb before=${rss0} stalled=${rss1} end=${rss2} dropped=${after.monitor.audio_dropped} tap_dropped=${after.monitor.tap_dropped} page_gaps_while_stalled=${stalledGaps} page_gaps=${st.gaps}→${st1.gaps} page_underruns_before=${under0} after=${st1.underruns}`);
  if (medianMax > bound) fail(`with a stalled listener the callback's median window max ${medianMax} µs is over the baseline's worst window × 1.25 or + 250 µs (${bound.toFixed(0)} µs)`);
  // The pooled p99s are reported, not asserted: at 1024 frames a window holds ≈ 28 callbacks,
  // so a p99 over 6 windows is about their second-longest callback — one hiccup of the machine.
  // RSS: what a stalled listener may hold is its queue (50 messages of at most 16 chunks of
  // 256 stereo int16 frames, 800 KiB) — the margin; and five stalled listeners later, no more.
  const queueKb = (50 * (16 * 1024 + 8)) / 1024;
  if (rss1 - rss0 > queueKb + 256) fail(`the daemon's RSS grew by ${rss1 - rss0} KiB with a stalled listener (margin ${queueKb + 256} KiB)`);
  if (rss2 - rss1 > 64) fail(`the daemon's RSS kept growing with a stalled listener: ${rss1} → ${rss2} KiB`);
  // The page's own listener lost nothing (its gaps count frames the daemon did not send it);
  // its underruns are reported, not asserted: a headless browser on a loaded machine has its own.
  // Asserted over the stalled windows (3.6 s): over the whole phase (≈ 20 s) the headless page
  // on a loaded 2-core machine now and then stops reading for over 0.5 s itself (its own queue
  // then drops, with no stalled listener about); that total is printed.
  if (stalledGaps !== 0) fail(`the page's stream lost frames while a listener was stalled: ${stalledGaps} gaps`);
  const tone = await until('the page still hears the tone', 3000, () => page.evaluate(() => stemdMonitor.player.stats.freqHz > 900 && stemdMonitor.player.stats));
  console.log(`monitor_browser: page still plays ${tone.freqHz.toFixed(1)} Hz`);
  // A voice waiting for the device (another daemon: --play with its device not there) is listed
  // with its state; the table showed none while the status said voices_waiting 1.
  const waitPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await waitPage.goto(process.env.WAITING_URL);
  const row = await until('the waiting voice shows in the page with its state', 5000, () => waitPage.evaluate(() => {
    const r = [...document.querySelectorAll('#voices tbody tr')].find((tr) => tr.textContent.includes('waiting (device not there yet)'));
    return r && { text: r.textContent, visible: r.querySelector('td.waiting').offsetWidth > 0 };
  }));
  if (!row.visible || !row.text.includes('tone')) fail(`the waiting voice's row: ${JSON.stringify(row)}`);
  console.log(`monitor_browser: waiting voice row: ${row.text}`);
  await browser.close();
  console.log('monitor_browser: PASS');
})().catch((e) => fail(e.stack || String(e)));
