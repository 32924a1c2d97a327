// What the browser tests share (layout.test.js, monitor.test.js): their fail/sleep/until and
// Debian's chromium (or $CHROMIUM) opened headless through playwright-core with one page.
'use strict';
const { chromium } = require('playwright-core');

// fail(msg) prints "NAME: FAIL: msg" and exits 1; until(what, ms, fn) polls fn every 100 ms
// until it returns something truthy (that is its result) and fails naming `what` after ms.
function harness(name) {
  const fail = (msg) => { console.error(`${name}: FAIL: ${msg}`); process.exit(1); };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  async function until(what, ms, fn) {
    const end = Date.now() + ms;
    let last;
    while (Date.now() < end) {
      last = await fn();
      if (last) return last;
      await sleep(100);
    }
    fail(`${what} (timed out after ${ms} ms)`);
  }
  return { fail, sleep, until };
}

// The browser (args: Chromium flags beside --no-sandbox and --disable-gpu) and a page of
// `viewport` whose uncaught errors go to onPageError.
async function openPage({ viewport, args = [], onPageError }) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', ...args, '--disable-gpu'],
  });
  const page = await browser.newPage({ viewport });
  page.on('pageerror', onPageError);
  return { browser, page };
}

module.exports = { harness, openPage };
