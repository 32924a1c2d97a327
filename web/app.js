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
const fmtTime = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, '0')}`;
const dbWidth = (db) => Math.max(0, Math.min(100, (db + 60) / 60 * 100));

function meterHtml(m) {
  return `<div class="meter" title="peak ${m.peak_db.toFixed(1)} dBFS, RMS ${m.rms_db.toFixed(1)} dBFS">` +
    `<div class="rms" style="width:${dbWidth(m.rms_db)}%"></div><div class="peak" style="left:${dbWidth(m.peak_db)}%"></div></div>`;
}

let decksBuilt = false;
function buildDecks(decks) {
  const box = $('decks');
  box.innerHTML = '';
  const row = (name, body) => { const d = document.createElement('div'); d.className = 'deck'; d.innerHTML = `<b>${name}</b><div>${body}</div>`; box.appendChild(d); };
  for (const d of decks) {
    row(d.name, `<div id="meter-${d.name}"></div>
      <input type="range" min="0" max="1.5" step="0.01" id="level-${d.name}" title="deck level (0..1.5 here; OSC takes up to 4)">
      <div class="eq">${['low', 'mid', 'high'].map((b, i) => `<label>${b}<input type="range" min="0" max="50" step="1" id="eq-${d.name}-${i}" title="0 kills the band, 50 is flat"></label>`).join('')}</div>`);
    $(`level-${d.name}`).addEventListener('change', (e) => osc('/stemd/deck', [d.name, Number(e.target.value)]));
    for (let i = 0; i < 3; i++) {
      $(`eq-${d.name}-${i}`).addEventListener('change', (e) => osc('/deck_eq', [d.name, ['low', 'mid', 'high'][i], Number(e.target.value)]));
    }
  }
  row('Master', `<div id="meter-master"></div><input type="range" min="0" max="1.5" step="0.01" id="level-master">`);
  $('level-master').addEventListener('change', (e) => osc('/stemd/master', [Number(e.target.value)]));
  decksBuilt = true;
}

function setIdle(input, v) { if (document.activeElement !== input) input.value = v; }
// /deck_eq's percent from the band's gain in the status: 0 kill, 50 flat, 10^(((p/50)−1)·24/20) between.
const eqPercent = (g) => (g <= 0 ? 0 : g >= 1 ? 50 : Math.max(0, 50 * (1 + (20 * Math.log10(g)) / 24)));

function render(j) {
  const s = j.status;
  $('device').textContent = `${s.backend} · ${s.sample_rate} Hz · ${s.buffer_size} frames`;
  $('p99').textContent = s.callback_p99_us.toFixed(0);
  $('budget').textContent = s.budget_us.toFixed(0);
  const frac = s.callback_p99_us / s.budget_us;
  $('p99bar').style.width = `${Math.min(100, 100 * frac)}%`;
  $('p99bar').parentElement.classList.toggle('hot', frac > 0.5);
  $('cbmax').textContent = `${s.callback_max_us.toFixed(0)} µs`;
  $('underruns').textContent = s.voice_underruns;
  $('underflows').textContent = s.device_underflows;
  $('memory').textContent = `${(s.memory_bytes / 1048576).toFixed(1)} MiB`;
  $('uptime').textContent = fmtTime(s.uptime_s);
  // The build running (after a package upgrade: the old one until the service restarts).
  $('version').textContent = s.version ?? '–';
  // The beat clock, the Link session (--link) and the stretch buses in use (time_stretch).
  let tempo = `${(s.tempo_bpm ?? 0).toFixed(2)} bpm · beat ${(s.beat ?? 0).toFixed(1)}`;
  if (s.link) tempo += ` · Link: ${s.link_peers} peer${s.link_peers === 1 ? '' : 's'}`;
  if (s.stretch_buses > 0) tempo += ` · stretch buses ${s.stretch_buses_running} of ${s.stretch_buses} running (${s.stretch_bus_voices} voices)`;
  $('tempo').textContent = tempo;
  if (!decksBuilt) buildDecks(j.decks);
  // --disable-filters: the daemon answers EQ messages and ignores them; the sliders say so.
  const eqOff = j.eq_enabled === false;
  $('eq-note').hidden = !eqOff;
  for (const d of j.decks) {
    $(`meter-${d.name}`).innerHTML = meterHtml(d.meter);
    setIdle($(`level-${d.name}`), d.level);
    d.eq.forEach((v, i) => {
      const input = $(`eq-${d.name}-${i}`);
      input.disabled = eqOff;
      input.title = eqOff ? 'EQ off: stemd was started with --disable-filters' : '0 kills the band, 50 is flat';
      setIdle(input, eqPercent(v));
    });
  }
  $('meter-master').innerHTML = meterHtml(j.master.meter);
  setIdle($('level-master'), j.master.level);
  $('nvoices').textContent = `(${j.voices.length})`;
  // Long names are cut with an ellipsis (the whole name in the tooltip); position and volume
  // wrap at their spaces when the table is narrow (style.css): the Stop button stays in view.
  $('voices').tBodies[0].innerHTML = j.voices.map((v) => `<tr><td>${v.id}</td><td class="c-name" title="${escapeHtml(v.name)}">${escapeHtml(v.name)}</td><td class="opt">${v.deck}</td>` +
    `<td class="wrap">${fmtTime(v.position_s)} / ${fmtTime(v.duration_s)}</td>` +
    `<td class="opt"><div class="bar${v.ring_fill < 0.25 ? ' hot' : ''}" title="ring ${(100 * v.ring_fill).toFixed(0)} %"><div style="width:${100 * v.ring_fill}%"></div></div></td>` +
    `<td class="wrap">${v.waiting ? '—' : v.fade_s > 0 ? `${v.volume_now.toFixed(2)} → ${v.volume.toFixed(2)} (${v.fade_s.toFixed(1)}\u00a0s)` : v.volume.toFixed(2)}</td>` +
    // a voice waiting for the device: its state in full (not an "opt" cell a narrow table hides)
    `<td class="${v.waiting ? 'waiting' : 'opt'}">${escapeHtml(v.state)}</td><td><button data-stop="${v.id}">stop</button></td></tr>`).join('');
}

function escapeHtml(t) { return String(t).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]); }

async function poll() {
  try {
    const t0 = performance.now();
    const res = await fetch(`/api/status?page=${pageId}`);
    const j = await res.json();
    const t1 = performance.now();
    monitor.status = j;
    // The daemon's stream clock against the page's: frame `frames` was rendered at about t1 − rtt/2.
    const clock = { ms: (t0 + t1) / 2 - 1000 * j.status.frames / j.status.sample_rate, rtt: t1 - t0 };
    if (!monitor.clock || clock.rtt < monitor.clock.rtt * 1.5) monitor.clock = clock;
    render(j);
    $('conn').textContent = 'connected'; $('conn').className = 'good';
  } catch (e) {
    $('conn').textContent = 'disconnected'; $('conn').className = 'bad';
  }
  setTimeout(poll, 250);
}

// ---- events ----
function logEvent(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toISOString().slice(11, 23)} ${text}`;
  $('events').prepend(li);
  while ($('events').children.length > 200) $('events').lastChild.remove();
}

function connectEvents() {
  const ws = new WebSocket(`ws://${location.host}/ws/events`);
  ws.onmessage = (e) => {
    const j = JSON.parse(e.data);
    monitor.events.push(j);
    if (monitor.events.length > 500) monitor.events.shift();
    logEvent(j.event === 'api' ? `${j.reply} ${j.address} ${j.args.join(' ')}` : `${j.event} ${j.args.join(' ')}`);
  };
  ws.onclose = () => setTimeout(connectEvents, 1000);
}

// ---- controls ----
$('load-form').addEventListener('submit', (e) => {
  e.preventDefault();
  osc('/stemd/load', [Number($('load-id').value), $('load-path').value]);
});
$('play-btn').addEventListener('click', () => osc('/stemd/play', [Number($('load-id').value), 1, $('loop').checked ? 1 : 0]));
$('stop-btn').addEventListener('click', () => osc('/stemd/stop', [Number($('load-id').value)]));
$('voices').addEventListener('click', (e) => { if (e.target.dataset.stop) osc('/stemd/stop', [Number(e.target.dataset.stop)]); });
$('osc-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const args = $('osc-args').value.trim().split(/\s+/).filter((a) => a).map((a) => (isNaN(Number(a)) ? a : Number(a)));
  osc($('osc-address').value, args);
});

// ---- the media root ----
const fmtSize = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`);
async function browse(dir) {
  const res = await fetch(`/api/files?dir=${encodeURIComponent(dir)}`);
  const j = await res.json();
  monitor.files = Object.assign({ ok: res.ok }, j);
  if (!res.ok) {
    $('files').innerHTML = `<li class="bad">${escapeHtml(j.error)}</li>`;
    return;
  }
  $('files-dir').textContent = `/${j.dir}`;
  const items = [];
  if (j.parent !== null) items.push(`<li><a href="#" data-dir="${escapeHtml(j.parent)}">../</a></li>`);
  const sorted = [...j.entries].sort((a, b) => (b.dir - a.dir));  // folders first, names in order
  for (const e of sorted) {
    items.push(e.dir ? `<li><a href="#" data-dir="${escapeHtml(e.path)}">${escapeHtml(e.name)}/</a></li>` :
      `<li><a href="#" data-file="${escapeHtml(e.path)}">${escapeHtml(e.name)}</a><span>${fmtSize(e.size)}</span></li>`);
  }
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
  osc('/stemd/load', [Number($('load-id').value), a.dataset.file]);
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
  ws.onclose = () => { $('listen-btn').textContent = 'Listen'; if (p.ctx) p.ctx.close(); monitor.player = null; };
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
  if (monitor.player) { monitor.player.ws.close(); return; }
  listen();
});

poll();
connectEvents();
browse('');
