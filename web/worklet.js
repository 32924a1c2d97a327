// stemd's monitor player (AudioWorklet): an adaptive jitter buffer for the daemon's master.
// The page hands over chunks {frame, samples (Int16Array, interleaved stereo), arrival (ms)}.
//  - target fill = mean + k·σ of the arrival jitter (how late each chunk arrives against the
//    earliest transit seen), plus the length of the largest recent message (the buffer drains
//    that much between two arrivals) and the fade's length, between 20 and 500 ms;
//  - drift: the read step is 1 ± at most 0.5 %, steered to hold the fill's mean (half a message
//    below the target: the fill is a sawtooth) where it should be, so a browser clock a little
//    off the daemon's neither drains nor floods the buffer;
//  - underrun: when less than the fade and one render quantum is left, fade out over it (128
//    frames), count it, wait for the target, fade in.
// Stats go back to the page every 100 ms: fill, target, jitter, step, underruns, the stream
// frame being played, and the level and frequency (zero crossings) of what was played.
const K = 3;
const MIN_TARGET_MS = 20, MAX_TARGET_MS = 500;
const MAX_STEP_DEV = 0.005;
const FADE_FRAMES = 128;

class MonitorPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.cap = sampleRate * 4;  // 4 s of stereo frames
    this.buf = new Float32Array(this.cap * 2);
    this.writeFrame = -1;       // stream frame of the next frame written
    this.readFrame = 0;         // stream frame being read (fractional)
    this.playing = false;
    this.gain = 0;
    this.step = 1;
    this.underruns = 0;
    this.received = 0;
    this.gaps = 0;
    this.minCur = Infinity;   // fastest transit in this window of messages, and in the last one
    this.minPrev = Infinity;
    this.minAge = 0;
    this.jMean = 0; this.jVar = 0; this.jN = 0;
    this.targetFrames = (MIN_TARGET_MS * 2 / 1000) * sampleRate;
    this.meter = { sumsq: 0, peak: 0, n: 0, crossings: 0, last: 0 };
    this.lastReport = 0;
    this.port.onmessage = (e) => this.onChunk(e.data);
  }

  fill() { return this.writeFrame < 0 ? 0 : this.writeFrame - this.readFrame; }

  onChunk({ frame, samples, arrival, rate }) {
    const n = samples.length / 2;
    this.received++;
    // Jitter: how much later than the fastest transit of the last one or two windows of 500
    // messages (≈ 10–20 s; old minima age out, so a clock drifting the other way is followed).
    const transit = arrival - (frame / rate) * 1000;
    if (++this.minAge > 500) { this.minPrev = this.minCur; this.minCur = Infinity; this.minAge = 0; }
    this.minCur = Math.min(this.minCur, transit);
    const late = transit - Math.min(this.minCur, this.minPrev);
    this.jN = Math.min(this.jN + 1, 500);
    const a = 1 / this.jN;
    const d = late - this.jMean;
    this.jMean += a * d;
    this.jVar = (1 - a) * (this.jVar + a * d * d);
    this.burst = Math.max((this.burst || 0) * 0.995, n);  // frames: the largest recent message, decaying
    const targetMs = Math.min(MAX_TARGET_MS, Math.max(MIN_TARGET_MS,
      this.jMean + K * Math.sqrt(this.jVar) + 1000 * (this.burst + 2 * FADE_FRAMES) / sampleRate));
    this.targetFrames = targetMs * sampleRate / 1000;
    if (this.writeFrame >= 0 && frame !== this.writeFrame) {
      this.gaps++;  // frames lost on the way (the daemon dropped them for a slow reader)
      if (frame < this.writeFrame || frame - this.writeFrame > this.cap / 2) { this.writeFrame = -1; this.playing = false; }
    }
    if (this.writeFrame < 0) { this.writeFrame = frame; this.readFrame = frame; }
    // A gap is filled with silence so frame numbers and positions stay one clock.
    while (this.writeFrame < frame) { this.put(this.writeFrame++, 0, 0); }
    for (let i = 0; i < n; i++) this.put(this.writeFrame++, samples[2 * i] / 32768, samples[2 * i + 1] / 32768);
    if (this.fill() > this.cap - 1) this.readFrame = this.writeFrame - this.targetFrames;  // overflow: jump
  }

  put(f, l, r) { const i = (f % this.cap) * 2; this.buf[i] = l; this.buf[i + 1] = r; }

  process(inputs, outputs) {
    const out = outputs[0];
    const L = out[0], R = out[1] || out[0];
    const n = L.length;
    let fill = this.fill();
    if (!this.playing && fill >= this.targetFrames) { this.playing = true; }  // start or recover: fade in
    if (this.playing && fill < n + FADE_FRAMES + 2) { this.playing = false; this.underruns++; }  // fade out on what is left
    // Drift: steer the step toward holding the fill's mean at target − half a message (± 0.5 %, smoothed).
    const centre = this.targetFrames - (this.burst || 0) / 2;
    const err = (fill - centre) / Math.max(this.targetFrames, 1);
    const want = 1 + Math.max(-MAX_STEP_DEV, Math.min(MAX_STEP_DEV, 0.02 * err));
    this.step += 0.01 * (want - this.step);
    const m = this.meter;
    for (let i = 0; i < n; i++) {
      const g = this.gain;
      if (this.playing && g < 1) this.gain = Math.min(1, g + 1 / FADE_FRAMES);
      else if (!this.playing && g > 0) this.gain = Math.max(0, g - 1 / FADE_FRAMES);
      let l = 0, r = 0;
      if (this.gain > 0 && this.writeFrame >= 0 && this.readFrame + 1 < this.writeFrame) {
        const f0 = Math.floor(this.readFrame), t = this.readFrame - f0;
        const i0 = (f0 % this.cap) * 2, i1 = ((f0 + 1) % this.cap) * 2;
        l = (this.buf[i0] + t * (this.buf[i1] - this.buf[i0])) * this.gain;
        r = (this.buf[i0 + 1] + t * (this.buf[i1 + 1] - this.buf[i0 + 1])) * this.gain;
        this.readFrame += this.step;
      }
      L[i] = l; if (R !== L) R[i] = r;
      m.sumsq += l * l; m.peak = Math.max(m.peak, Math.abs(l)); m.n++;
      if ((l >= 0) !== (m.last >= 0)) m.crossings++;
      m.last = l;
    }
    if (currentTime - this.lastReport >= 0.1) this.report();
    return true;
  }

  report() {
    const m = this.meter;
    const secs = m.n / sampleRate;
    this.port.postMessage({
      fillMs: 1000 * this.fill() / sampleRate, targetMs: 1000 * this.targetFrames / sampleRate,
      jitterMs: this.jMean, jitterSdMs: Math.sqrt(this.jVar), step: this.step,
      underruns: this.underruns, gaps: this.gaps, received: this.received, playing: this.playing,
      playFrame: this.readFrame, time: currentTime,
      rms: m.n ? Math.sqrt(m.sumsq / m.n) : 0, peak: m.peak, freqHz: secs > 0 ? m.crossings / 2 / secs : 0,
    });
    this.lastReport = currentTime;
    this.meter = { sumsq: 0, peak: 0, n: 0, crossings: 0, last: m.last };
  }
}

registerProcessor('stemd-monitor', MonitorPlayer);
