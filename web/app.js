// stemd's web monitor page: status (polled from /api/status), controls (POST /api/osc), events
// (/ws/events) and the live mix (/ws/audio → the AudioWorklet in worklet.js). No build step.
'use strict';
const $ = (id) => document.getElementById(id);
const monitor = window.stemdMonitor = { status: null, player: null, events: [], replies: [], files: null };
// This page's name for its peak meters: the daemon holds peaks per page, so two pages open at
// once do not take each other's.
const pageId = Math.random().toString(36).slice(2, 12);

async function osc(address, args = []) {
  const res = await fetch('/api/osc', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ address, args }) });
  const j = await res.json();
  monitor.replies.push(j);
  $('reply').textContent = j.error ? 'error: ' + j.error :
    `${j.reply} ${j.address} ${j.args.map((a) => JSON.stringify(a)).join(' ')}`;
  $('reply').className = j.reply === '/done' ? 'good' : 'bad';
  return j;
}

// ---- status ----
// Seconds (a file's, or the daemon's uptime) as stemctl shows them (src/ctl/format.cpp fmt_time):
// rounded to tenths, then m:ss.s, or h:mm:ss.s from an hour on (a 2-h file is 2:00:00.0, not 120:00.0).
function fmtTime(s) {
  const t = Math.round(10 * (Number.isFinite(s) && s > 0 ? s : 0));
  const h = Math.floor(t / 36000), m = Math.floor(t / 600) % 60, ss = `${String(Math.floor(t / 10) % 60).padStart(2, '0')}.${t % 10}`;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
// A level (deck, master: a gain factor, 1 = unity) as a number and in dB, as the sliders show it.
function levelText(x) {
  const db = 20 * Math.log10(x);
  const dbText = x <= 0 ? '−∞' : Math.abs(db) < 0.05 ? '0.0' : `${db > 0 ? '+' : '−'}${Math.abs(db).toFixed(1)}`;
  return `${x.toFixed(2)} · ${dbText} dB`;
}
// The daemon's uptime as stemctl shows it (src/ctl/format.cpp fmt_uptime): h:mm:ss, and from a
// day on "21d 00:00:00" — not 504:00:00.0 after three weeks.
function fmtUptime(s) {
  const t = Math.floor(Number.isFinite(s) && s > 0 ? s : 0);
  const d = Math.floor(t / 86400), h = Math.floor(t / 3600) % 24;
  const mmss = `${String(Math.floor(t / 60) % 60).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}`;
  return d > 0 ? `${d}d ${String(h).padStart(2, '0')}:${mmss}` : `${h}:${mmss}`;
}
const dbWidth = (db) => Math.max(0, Math.min(100, (db + 60) / 60 * 100));

// A bus's meter; without one (stemd not answering) an empty track, not the last green bar.
function meterHtml(m) {
  if (!m) return '<div class="meter" title="stemd is not answering"></div>';
  return `<div class="meter" title="peak ${m.peak_db.toFixed(1)} dBFS, RMS ${m.rms_db.toFixed(1)} dBFS">` +
    `<div class="rms" style="width:${dbWidth(m.rms_db)}%"></div><div class="peak" style="left:${dbWidth(m.peak_db)}%"></div></div>`;
}

// A level slider 0..1.5 with its value beside it (number and dB: a title is not seen on a touch
// screen) and a tick at 1.0, unity (the datalist #unity: the browser draws it and snaps to it).
const levelHtml = (id, title) => `<div class="level"><input type="range" min="0" max="1.5" step="0.01" id="${id}" list="unity" title="${title}">` +
  `<output id="${id}-value" for="${id}"></output></div>`;
function levelInput(id, send) {
  $(id).addEventListener('input', (e) => { $(`${id}-value`).textContent = levelText(Number(e.target.value)); });
  $(id).addEventListener('change', (e) => send(Number(e.target.value)));
}
function showLevel(id, v) {
  setIdle($(id), v);
  if (document.activeElement !== $(id)) $(`${id}-value`).textContent = levelText(v);
}

let decksBuilt = false;
function buildDecks(decks) {
  const box = $('decks');
  box.innerHTML = '';
  const row = (name, body) => { const d = document.createElement('div'); d.className = 'deck'; d.innerHTML = `<b>${name}</b><div>${body}</div>`; box.appendChild(d); };
  for (const d of decks) {
    row(d.name, `<div id="meter-${d.name}"></div>
      ${levelHtml(`level-${d.name}`, 'deck level (0..1.5 here; OSC takes up to 4)')}
      <div class="eq">${['low', 'mid', 'high'].map((b, i) => `<label>${b}<input type="range" min="0" max="50" step="1" id="eq-${d.name}-${i}" title="0 kills the band, 50 is flat"><output id="eq-${d.name}-${i}-value"></output></label>`).join('')}</div>`);
    levelInput(`level-${d.name}`, (v) => osc('/stemd/deck', [d.name, v]));
    for (let i = 0; i < 3; i++) {
      const id = `eq-${d.name}-${i}`;
      $(id).addEventListener('input', (e) => { $(`${id}-value`).textContent = eqText(Number(e.target.value)); });
      $(id).addEventListener('change', (e) => osc('/deck_eq', [d.name, ['low', 'mid', 'high'][i], Number(e.target.value)]));
    }
  }
  row('Master', `<div id="meter-master"></div>${levelHtml('level-master', 'master level (0..1.5 here)')}`);
  levelInput('level-master', (v) => osc('/stemd/master', [v]));
  decksBuilt = true;
}

function setIdle(input, v) { if (document.activeElement !== input) input.value = v; }
// /deck_eq's percent from the band's gain in the status: 0 kill, 50 flat, 10^(((p/50)−1)·24/20) between.
const eqPercent = (g) => (g <= 0 ? 0 : g >= 1 ? 50 : Math.max(0, 50 * (1 + (20 * Math.log10(g)) / 24)));
// An EQ slider's value as shown beside it (a title is not seen on a touch screen): its percent and
// what it does — "50 flat", "0 kill", "25 −12.0 dB".
const eqText = (p) => (p >= 50 ? '50 flat' : p <= 0 ? '0 kill' : `${Math.round(p)} ${(((p / 50) - 1) * 24).toFixed(1).replace('-', '\u2212')}\u00a0dB`);

function render(j) {
  const s = j.status;
  $('device').textContent = `${s.backend} · ${s.sample_rate} Hz · ${s.buffer_size} frames`;
  // The device's state beside "connected", on the first screen (a phone's): a lost or missing device
  // is what an operator checking the show must see first (outside pass 26, user M2), and how often
  // it was lost since stemd started, the last when and for how long (user M1).
  const lostFor = s.device_lost_s ?? s.device_waiting_s;
  const away = s.device && s.device !== 'running';
  const lastLoss = s.device_last_loss_age_s !== undefined ?
    `, the last ${fmtUptime(s.device_last_loss_age_s)} ago for ${s.device_last_loss_s.toFixed(1)}\u00a0s` : '';
  $('devstate').textContent = away ? `device ${s.device}${lostFor !== undefined ? ` for ${lostFor.toFixed(1)}\u00a0s` : ''}${s.device_error ? `: ${s.device_error}` : ''}` :
    s.device_losses > 0 ? `device lost ${s.device_losses} time${s.device_losses === 1 ? '' : 's'} since the start${lastLoss}` : '';
  $('devstate').className = away ? 'bad' : s.device_losses > 0 ? 'warn' : '';
  // Sources of the state file whose files are missing (a USB stick not mounted): why nothing plays,
  // on the first screen beside the device's state (new-user pass 29, M2).
  $('waiting').textContent = s.sources_waiting > 0 ? (s.sources_waiting_for || `${s.sources_waiting} sources waiting for their files`) : '';
  $('p99').textContent = s.callback_p99_us.toFixed(0);
  $('budget').textContent = s.budget_us.toFixed(0);
  const frac = s.callback_p99_us / s.budget_us;
  $('p99bar').style.width = `${Math.min(100, 100 * frac)}%`;
  $('p99bar').parentElement.classList.toggle('hot', frac > 0.5);
  $('cbmax').textContent = `${s.callback_max_us.toFixed(0)} µs`;
  $('underruns').textContent = s.voice_underruns;
  $('underflows').textContent = s.device_underflows;
  $('memory').textContent = `${(s.memory_bytes / 1048576).toFixed(1)} MiB`;
  $('uptime').textContent = fmtUptime(s.uptime_s);
  // The build running (after a package upgrade: the old one until the service restarts).
  $('version').textContent = s.version ?? '–';
  // The beat clock, the Link session (--link) and the stretch buses in use (time_stretch); while no
  // tempo is in use (none given or set: the clock ticks at --bpm's default, nothing follows it), says so.
  let tempo = s.tempo_in_use === 0 ? 'no tempo set' : `${(s.tempo_bpm ?? 0).toFixed(2)} bpm · beat ${(s.beat ?? 0).toFixed(1)}`;
  if (s.link) tempo += ` · Link: ${s.link_peers} peer${s.link_peers === 1 ? '' : 's'}`;
  if (s.stretch_buses > 0) tempo += ` · stretch buses ${s.stretch_buses_running} of ${s.stretch_buses} running (${s.stretch_bus_voices} voices)`;
  $('tempo').textContent = tempo;
  if (!decksBuilt) buildDecks(j.decks);
  // --disable-filters: the daemon answers EQ messages and ignores them; the sliders say so.
  const eqOff = j.eq_enabled === false;
  $('eq-note').hidden = !eqOff;
  if (eqOff) $('eq-why').textContent = j.eq_off_reason || '--disable-filters';
  for (const d of j.decks) {
    $(`meter-${d.name}`).innerHTML = meterHtml(d.meter);
    showLevel(`level-${d.name}`, d.level);
    d.eq.forEach((v, i) => {
      const input = $(`eq-${d.name}-${i}`);
      input.disabled = eqOff;
      input.title = eqOff ? `EQ off: ${j.eq_off_reason || '--disable-filters'}` : '0 kills the band, 50 is flat';
      setIdle(input, eqPercent(v));
      if (document.activeElement !== input) $(`eq-${d.name}-${i}-value`).textContent = eqOff ? 'off' : eqText(eqPercent(v));
    });
  }
  $('meter-master').innerHTML = meterHtml(j.master.meter);
  showLevel('level-master', j.master.level);
  // The daemon lists the first voices by id (500) and counts the rest: a row says how many more.
  const total = j.voices_total ?? j.voices.length;
  const more = j.voices_cut ?? 0;
  $('nvoices').textContent = `(${total})`;
  $('voices').tBodies[0].innerHTML = j.voices.map(voiceRow).join('') + (more > 0 ?
    `<tr class="more"><td colspan="8">… and ${more} more (the first ${j.voices.length} by id are listed; <code>stemctl voices</code> lists them all)</td></tr>` : '');
}

// One row of the Voices table. Long names are cut with an ellipsis (the whole name in the
// tooltip); position and volume wrap at their spaces when the table is narrow (style.css), and a
// phone drops the deck, ring and volume columns, never the state: a paused voice must not look
// like a playing one. The buttons stay in view: pause or resume (as the voice is) and stop. A
// voice on its way out (stopped, or replaced by a play of its id: the id's new voice is listed
// beside it) has none — they would act on the id, that is on its new voice.
function voiceRow(v) {
  // A long name comes cut to 64 bytes ("…", name_cut): its tooltip says where the whole one is.
  const title = v.name_cut ? `${v.name} (cut: /stemd/voices or stemctl voices has the whole name)` : v.name;
  const volume = v.waiting ? '—' : v.fade_s > 0 ? `${v.volume_now.toFixed(2)} → ${v.volume.toFixed(2)} (${v.fade_s.toFixed(1)}\u00a0s)` : v.volume.toFixed(2);
  const live = !v.waiting && v.state !== 'stopping';
  const toggle = !live ? '' : v.state === 'paused' ? `<button data-resume="${v.id}" title="resume ${v.id}" aria-label="resume ${v.id}">▶\ufe0e</button>` :
    `<button data-pause="${v.id}" title="pause ${v.id}" aria-label="pause ${v.id}">❚❚</button>`;
  // a voice waiting for the device: its state in full ("waiting (device lost)"), in its tooltip too
  // (a quantised start waiting reads "starting in 1.3 s": its class is its first word's)
  const state = v.waiting ? 'waiting' : `st st-${v.state.split(' ')[0]}`;
  return `<tr><td>${v.id}</td><td class="c-name" title="${escapeHtml(title)}">${escapeHtml(v.name)}</td><td class="opt">${v.deck}</td>` +
    `<td class="wrap">${fmtTime(v.position_s)} / ${fmtTime(v.duration_s)}</td>` +
    `<td class="opt"><div class="bar${v.ring_fill < 0.25 ? ' hot' : ''}" title="ring ${(100 * v.ring_fill).toFixed(0)} %"><div style="width:${100 * v.ring_fill}%"></div></div></td>` +
    `<td class="wrap opt">${volume}</td><td class="${state}" title="${escapeHtml(v.state)}">${escapeHtml(v.state)}</td>` +
    `<td class="act">${toggle}${live || v.waiting ? `<button data-stop="${v.id}">stop</button>` : ''}</td></tr>`;
}

// stemd not answering (its status polls fail): the voices, meters and health are greyed out and
// the voices' states read "?" (their last known state in the tooltip), the meters are emptied —
// nothing frozen looks alive — and the Events say when it went and when it is back, and whether
// it restarted meanwhile (its uptime is less than the time since it last answered).
const link = { up: null, lastOk: 0, uptime: 0 };
function wentAway(why) {
  $('conn').textContent = 'disconnected'; $('conn').className = 'bad';
  if (link.up === false) return;
  link.up = false;
  document.body.classList.add('offline');
  for (const m of document.querySelectorAll('#decks [id^=meter-]')) m.innerHTML = meterHtml(null);
  for (const td of document.querySelectorAll('#voices td.st, #voices td.waiting')) td.textContent = '?';
  for (const b of document.querySelectorAll('#voices button, #decks input')) b.disabled = true;
  logEvent(`stemd is not answering (${why}): the voices and meters shown are its last, greyed out`);
}
function cameBack(s) {
  const now = Date.now();
  if (link.up === false) {
    const away = (now - link.lastOk) / 1000;  // since its last answer
    // Not restarted: its uptime went on through the gap (a second of slack for the poll itself).
    const restarted = s.uptime_s + 1 < link.uptime + (now - link.lastOk) / 1000;
    logEvent(`stemd is back, ${away.toFixed(1)} s after its last answer: ${restarted ? `restarted (up ${fmtUptime(s.uptime_s)})` : `not restarted (up ${fmtUptime(s.uptime_s)})`}, ` +
      `${s.sources} source${s.sources === 1 ? '' : 's'} loaded, ${s.voices} voice${s.voices === 1 ? '' : 's'}`);
    document.body.classList.remove('offline');
    for (const b of document.querySelectorAll('#decks input')) b.disabled = false;
  }
  if (monitor.relisten && !monitor.player) {
    monitor.relisten = false;
    logEvent('listening again');
    listen();
  }
  link.up = true;
  link.lastOk = now;
  link.uptime = s.uptime_s;
  $('conn').textContent = 'connected'; $('conn').className = 'good';
}

function escapeHtml(t) { return String(t).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]); }

async function poll() {
  // An answer within 3 s, or stemd counts as gone (a stopped process holds the connection open).
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 3000);
  try {
    const t0 = performance.now();
    const res = await fetch(`/api/status?page=${pageId}`, { signal: abort.signal });
    if (!res.ok) {  // with its reason: a 503 says the daemon is busy (clients that do not read hold its answers)
      const why = (await res.json().catch(() => ({}))).error;
      throw new Error(`HTTP ${res.status}${why ? `: ${why}` : ''}`);
    }
    const j = await res.json();
    const t1 = performance.now();
    monitor.status = j;
    // The daemon's stream clock against the page's: frame `stream_frames` (this image's: /ws/audio's
    // numbers; `frames` counts since the service started) was rendered at about t1 − rtt/2.
    const frame = j.status.stream_frames ?? j.status.frames;
    const clock = { ms: (t0 + t1) / 2 - 1000 * frame / j.status.sample_rate, rtt: t1 - t0 };
    if (!monitor.clock || clock.rtt < monitor.clock.rtt * 1.5) monitor.clock = clock;
    cameBack(j.status);
    render(j);
  } catch (e) {
    wentAway(e.name === 'AbortError' ? 'no answer within 3 s' : e.name === 'TypeError' ? 'no connection' : e.message);
  }
  clearTimeout(timer);
  setTimeout(poll, 250);
}

// ---- events ----
function logEvent(text, atMs) {  // atMs: when stemd sent it (a past event), else now
  const li = document.createElement('li');
  li.textContent = `${new Date(atMs || Date.now()).toISOString().slice(11, 23)} ${text}`;
  $('events').prepend(li);
  while ($('events').children.length > 200) $('events').lastChild.remove();
}

// Each event is numbered (seq) in its run (run: the service's, the same across hand-overs); the
// socket asks for those after the last one seen, so what came while it was closed — a device loss
// whose hand-over to a new image closed it — is shown when it reconnects (stemd keeps the last 64,
// across hand-overs), each once.
monitor.lastSeq = 0;
monitor.run = '';
function connectEvents() {
  const run = monitor.run ? `&run=${monitor.run}` : '';
  const ws = new WebSocket(`ws://${location.host}/ws/events?since=${monitor.lastSeq}${run}`);
  let first = true;
  ws.onmessage = (e) => {
    const j = JSON.parse(e.data);
    if (j.seq !== undefined) {
      // stemd sends only those after the number asked for — unless it restarted as a service (a
      // new run, its numbers begun again): then it sends all it kept, the new run's first among
      // them, though their numbers may be above ours.
      if (j.run !== undefined && j.run !== monitor.run) {
        monitor.run = j.run;
        monitor.lastSeq = 0;
      }
      if (first && j.seq <= monitor.lastSeq) monitor.lastSeq = 0;
      first = false;
      if (j.seq <= monitor.lastSeq) return;  // shown already
      monitor.lastSeq = j.seq;
    }
    monitor.events.push(j);
    if (monitor.events.length > 500) monitor.events.shift();
    // args_cut: an event over 16 KiB came without its last args (docs/monitor.md)
    const args = j.args.join(' ') + (j.args_cut ? ` … (${j.args_cut} more)` : '');
    logEvent(j.event === 'api' ? `${j.reply} ${j.address} ${args}` : `${j.event} ${args}`, j.time_ms);
  };
  ws.onclose = () => setTimeout(connectEvents, 1000);
}

// ---- controls ----
// A load into an id that has a voice stops that voice. On a phone one tap in the Media list (a
// mis-tap while scrolling) would silence a stem of the installation: a load into an id that is
// playing (or paused) asks first. It is not loaded into another, free id instead: the id decides
// the deck a voice plays on (ids 100–199 deck A, …) and what Play and Stop under Controls act on.
function loadInto(id, path) {
  const st = monitor.status;
  const v = st && link.up && st.voices.find((x) => x.id === id && x.state !== 'stopping');
  // Past the listed voices (the first 500 by id) an id may be playing unseen: asked too.
  const unseen = !v && st && link.up && (st.voices_cut ?? 0) > 0 && st.voices.length > 0 && id > st.voices[st.voices.length - 1].id;
  if (unseen && !window.confirm(`id ${id} is past the ${st.voices.length} voices listed (of ${st.voices_total}): if it is playing, a load stops it. Load ${path} into it?`)) {
    $('reply').textContent = `not loaded: id ${id} may be playing (past the voices listed) — a load would stop it`;
    $('reply').className = 'bad';
    return;
  }
  if (v && !window.confirm(`id ${id} is ${v.waiting ? 'waiting to play' : v.state} (${v.name}): load ${path} into it and stop that voice?`)) {
    $('reply').textContent = `not loaded: id ${id} is ${v.waiting ? 'waiting to play' : v.state} (${v.name}) — a load would stop it; choose another id under Controls`;
    $('reply').className = 'bad';
    return;
  }
  osc('/stemd/load', [id, path]);
}
$('load-form').addEventListener('submit', (e) => {
  e.preventDefault();
  loadInto(Number($('load-id').value), $('load-path').value);
});
$('play-btn').addEventListener('click', () => osc('/stemd/play', [Number($('load-id').value), 1, $('loop').checked ? 1 : 0]));
$('stop-btn').addEventListener('click', () => osc('/stemd/stop', [Number($('load-id').value)]));
$('voices').addEventListener('click', (e) => {
  const b = e.target.closest('button');
  if (!b) return;
  for (const what of ['stop', 'pause', 'resume']) {
    if (b.dataset[what]) osc(`/stemd/${what}`, [Number(b.dataset[what])]);
  }
});
$('osc-form').addEventListener('submit', (e) => {
  e.preventDefault();
  // Empty fields send nothing (the placeholders are examples, not a command: one tap on Send played
  // a test tone through the venue's speakers — outside pass 26, user L3).
  if (!$('osc-address').value.trim()) {
    $('reply').textContent = 'type an OSC address first, e.g. /stemd/status';
    $('reply').className = 'bad';
    return;
  }
  const args = $('osc-args').value.trim().split(/\s+/).filter((a) => a).map((a) => (isNaN(Number(a)) ? a : Number(a)));
  osc($('osc-address').value.trim(), args);
});

// ---- the media root ----
const fmtSize = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`);
async function browse(dir) {
  const res = await fetch(`/api/files?dir=${encodeURIComponent(dir)}`);
  const j = await res.json();
  monitor.files = Object.assign({ ok: res.ok }, j);
  // No --media-root: nothing to browse, and not an error — one line saying how to set one, in place
  // of the click hint and a red refusal (new-user pass 24).
  $('files-hint').hidden = !!j.no_media_root;
  $('files-none').hidden = !j.no_media_root;
  $('load-path').placeholder = j.no_media_root ? 'full path of a file' : 'path (relative to the media root)';
  if (j.no_media_root) {
    $('files').innerHTML = '';
    return;
  }
  if (!res.ok) {  // with the way back up (a folder of a share that stopped answering: 504)
    const up = dir.includes('/') ? dir.slice(0, dir.lastIndexOf('/')) : '';
    $('files-dir').textContent = `/${dir}`;
    $('files').innerHTML = (dir ? `<li><a href="#" data-dir="${escapeHtml(up)}">../</a></li>` : '') +
      `<li class="bad">${escapeHtml(j.error)}</li>`;
    return;
  }
  $('files-dir').textContent = `/${j.dir}`;
  const items = [];
  if (j.parent !== null) items.push(`<li><a href="#" data-dir="${escapeHtml(j.parent)}">../</a></li>`);
  const sorted = [...j.entries].sort((a, b) => (b.dir - a.dir));  // folders first, names in order
  const unreachable = new Set();  // why entries were not looked at (a share that stopped answering)
  for (const e of sorted) {
    if (e.unreachable) {  // not a link: clicking would only be refused until the share answers
      unreachable.add(e.unreachable);
      items.push(`<li class="bad unreachable" data-unreachable="${escapeHtml(e.path)}" title="${escapeHtml(e.unreachable)}">` +
        `<span>${escapeHtml(e.name)}${e.link ? ' →' : ''}</span><span>not answering</span></li>`);
      continue;
    }
    items.push(e.dir ? `<li><a href="#" data-dir="${escapeHtml(e.path)}">${escapeHtml(e.name)}/</a></li>` :
      `<li><a href="#" data-file="${escapeHtml(e.path)}">${escapeHtml(e.name)}</a><span>${fmtSize(e.size)}</span></li>`);
  }
  for (const why of unreachable) items.push(`<li class="bad">not looked at: ${escapeHtml(why)}</li>`);
  if (j.truncated && !j.read_all) {
    items.push(`<li class="bad">more than ${j.scanned} entries: the first ${j.cap} by name of the first ${j.scanned} read — type a path for the others</li>`);
  } else if (j.truncated) {
    items.push(`<li class="bad">more than ${j.cap} entries: the first ${j.cap} by name</li>`);
  }
  if (!j.entries.length) items.push('<li>(empty)</li>');
  $('files').innerHTML = items.join('');
}
$('files').addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a) return;
  e.preventDefault();
  if (a.dataset.dir !== undefined) return browse(a.dataset.dir);
  $('load-path').value = a.dataset.file;
  loadInto(Number($('load-id').value), a.dataset.file);
});

// ---- the player ----
async function listen() {
  if (monitor.player) return;
  const ws = new WebSocket(`ws://${location.host}/ws/audio`);
  ws.binaryType = 'arraybuffer';
  const p = monitor.player = { ws, stats: null, header: null, bytes: 0, messages: 0 };
  ws.onmessage = async (e) => {
    if (typeof e.data === 'string') {
      p.header = JSON.parse(e.data);
      p.ctx = new AudioContext({ sampleRate: p.header.sample_rate, latencyHint: 'interactive' });
      await p.ctx.audioWorklet.addModule('worklet.js');
      p.node = new AudioWorkletNode(p.ctx, 'stemd-monitor', { outputChannelCount: [2] });
      p.node.connect(p.ctx.destination);
      p.node.port.onmessage = (m) => { p.stats = m.data; showPlayer(p); };
      await p.ctx.resume();
      return;
    }
    if (!p.node) return;
    const frame = Number(new DataView(e.data, 0, 8).getBigInt64(0, true));
    const samples = new Int16Array(e.data, 8);
    p.bytes += e.data.byteLength; p.messages++;
    p.node.port.postMessage({ frame, samples, arrival: performance.now(), rate: p.header.sample_rate }, [e.data]);
  };
  ws.onclose = () => {
    $('listen-btn').textContent = 'Listen';
    if (p.ctx) p.ctx.close();
    monitor.player = null;
    // Not the user's Stop: stemd restarted or went away. Said (a listener in headphones hears only
    // silence), and listened to again once stemd answers (outside pass 26, user L4).
    if (!p.stopped) {
      monitor.relisten = true;
      logEvent('listening stopped: the audio stream closed (stemd restarted or is not answering) — listening again once it answers');
    }
  };
  $('listen-btn').textContent = 'Stop listening';
}

function showPlayer(p) {
  const s = p.stats;
  $('fill').textContent = s.fillMs.toFixed(0);
  $('target').textContent = s.targetMs.toFixed(0);
  $('jitter').textContent = `${s.jitterMs.toFixed(1)} ± ${s.jitterSdMs.toFixed(1)} ms`;
  $('step').textContent = `${((s.step - 1) * 100).toFixed(3)} %`;
  $('pu').textContent = `${s.underruns} / ${s.gaps}`;
  const db = (x) => (x > 1e-6 ? 20 * Math.log10(x) : -120).toFixed(1);
  $('heard').textContent = `peak ${db(s.peak)} dBFS, ${s.freqHz.toFixed(0)} Hz`;
  // Delay: when the frame now playing was rendered by the daemon (its stamp on the daemon's
  // clock, mapped through /api/status) to when it leaves the browser (now + output latency).
  if (monitor.clock) {
    const renderedAt = monitor.clock.ms + 1000 * s.playFrame / p.header.sample_rate;
    const outMs = 1000 * ((p.ctx.outputLatency || 0) + (p.ctx.baseLatency || 0));
    s.delayMs = performance.now() - renderedAt + outMs;
    $('delay').textContent = `${s.delayMs.toFixed(0)} ms`;
  }
}

$('listen-btn').addEventListener('click', () => {
  monitor.relisten = false;
  if (monitor.player) { monitor.player.stopped = true; monitor.player.ws.close(); return; }
  listen();
});

poll();
connectEvents();
browse('');
