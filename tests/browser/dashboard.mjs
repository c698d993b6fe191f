// Headless-browser check of the dashboard page.
//
//   PLAYWRIGHT_CORE=<root>/target/tools/node/node_modules/playwright-core/index.mjs \
//     node tests/browser/dashboard.mjs <url> <screenshot.png>
//
// Loads <url> in Debian's headless Chromium (driven by playwright-core, which
// `cargo xtask test` installs under target/tools/node), reloading every second
// until the page shows the components frontend, greeter and phrasebook, the
// edge frontend→greeter, and advice about that edge in #advice (at most
// DASHBOARD_WAIT_MS, default 60000). Any console error, uncaught page error,
// failed request, or same-origin response with status >= 400 fails the check.
// Takes a full-page screenshot either way. The whole run is capped at 90 s
// (or DASHBOARD_WAIT_MS + 30 s if longer). On success prints one JSON line
//   {"ok":true,"components":[...],"edges":[...],"advice":[...]}
// and exits 0; otherwise explains on stderr and exits 1 (2 on bad usage).

import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const RELOAD_EVERY_MS = 1_000;
const INSPECT_EVERY_MS = 100;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// What the machine's closed network needs: no sandbox (runs as root), no GPU,
// and nothing that phones home (QUIC, component updates, sync, ...).
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const COMPONENTS = ['frontend', 'greeter', 'phrasebook'];
const EDGE = { from: 'frontend', to: 'greeter' };
const ADVICE_EDGE = `${EDGE.from}\u2192${EDGE.to}`;

const [url, screenshotPath] = process.argv.slice(2);
if (!url || !screenshotPath || !process.env.PLAYWRIGHT_CORE) {
  console.error(
    'usage: PLAYWRIGHT_CORE=<path to playwright-core/index.mjs> ' +
      'node tests/browser/dashboard.mjs <url> <screenshot.png>',
  );
  process.exit(2);
}
const waitMs = Number(process.env.DASHBOARD_WAIT_MS || 60_000);
if (!Number.isFinite(waitMs) || waitMs < 0) {
  console.error(`dashboard: bad DASHBOARD_WAIT_MS=${process.env.DASHBOARD_WAIT_MS}`);
  process.exit(2);
}

// 90 s, or more when DASHBOARD_WAIT_MS asks for a longer wait.
const HARD_TIMEOUT_MS = Math.max(90_000, waitMs + 30_000);

let browser;
// The whole script never outlives HARD_TIMEOUT_MS, whatever hangs (Playwright
// kills the browser it launched when the process exits).
const hardTimer = setTimeout(() => {
  console.error(`dashboard: FAILED: hard timeout of ${HARD_TIMEOUT_MS / 1000} s reached at ${url}`);
  process.exit(1);
}, HARD_TIMEOUT_MS);

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([
    Promise.resolve(promise),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function loadPlaywright(spec) {
  // Accept the package directory too, not only its entry file.
  let file = path.resolve(spec);
  if ((await stat(file)).isDirectory()) file = path.join(file, 'index.mjs');
  const mod = await import(pathToFileURL(file).href);
  const chromium = mod.chromium ?? mod.default?.chromium;
  if (!chromium) throw new Error(`${file} exports no \`chromium\``);
  return chromium;
}

// What the page shows now (evaluated in the page).
function pageState({ advice }) {
  const components = [...document.querySelectorAll('[data-component]')].map((e) =>
    e.getAttribute('data-component'),
  );
  const edges = [...document.querySelectorAll('.edge[data-from][data-to]')].map(
    (e) => `${e.getAttribute('data-from')}\u2192${e.getAttribute('data-to')}`,
  );
  const box = document.querySelector('#advice');
  const adviceItems = box ? [...box.querySelectorAll('[data-edge]')] : [];
  return {
    components: [...new Set(components)],
    edges: [...new Set(edges)],
    hasAdviceBox: box !== null,
    adviceEdges: adviceItems.map((e) => e.getAttribute('data-edge')),
    advice: adviceItems.map((e) => e.textContent.replace(/\s+/g, ' ').trim()),
    hasAdvice: box !== null && box.querySelector(`[data-edge="${advice}"]`) !== null,
  };
}

// The conditions that do not hold yet (empty when the page is complete).
function unmet(state) {
  if (!state) return ['the page could not be inspected'];
  const missing = [];
  for (const c of COMPONENTS) {
    if (!state.components.includes(c)) missing.push(`no [data-component="${c}"]`);
  }
  if (!state.edges.includes(ADVICE_EDGE)) {
    missing.push(`no .edge[data-from="${EDGE.from}"][data-to="${EDGE.to}"]`);
  }
  if (!state.hasAdvice) {
    missing.push(
      state.hasAdviceBox
        ? `#advice has no [data-edge="${ADVICE_EDGE}"] (it has: ${JSON.stringify(state.adviceEdges)})`
        : 'no #advice element',
    );
  }
  return missing;
}

async function main() {
  const chromium = await loadPlaywright(process.env.PLAYWRIGHT_CORE);
  const origin = new URL(url).origin;
  const errors = [];
  let state = null;
  let missing = ['the page was not loaded'];
  try {
    const launchStart = Date.now();
    // Playwright gives the browser a fresh temporary profile and deletes it on close.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
    console.error(`dashboard: ${CHROMIUM} ${browser.version()} launched in ${Date.now() - launchStart} ms`);
    const page = await browser.newPage();
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const { url: at, lineNumber } = msg.location();
      errors.push(`console error: ${msg.text()}${at ? ` (${at}:${lineNumber + 1})` : ''}`);
    });
    page.on('pageerror', (err) => errors.push(`page error: ${err.stack || err.message || err}`));
    page.on('crash', () => errors.push('page crashed'));
    page.on('requestfailed', (req) => {
      const why = req.failure()?.errorText ?? 'unknown error';
      // Our own reloads cancel what the page still had in flight (polls, streams).
      if (why === 'net::ERR_ABORTED') return;
      errors.push(`request failed: ${req.method()} ${req.url()}: ${why}`);
    });
    page.on('response', (res) => {
      if (res.status() < 400) return;
      let sameOrigin = false;
      try {
        sameOrigin = new URL(res.url()).origin === origin;
      } catch {}
      if (sameOrigin) errors.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
    });

    const deadline = Date.now() + waitMs;
    const navTimeout = () => Math.max(5_000, deadline - Date.now());
    try {
      await page.goto(url, { waitUntil: 'load', timeout: navTimeout() });
      for (;;) {
        // Look every 100 ms for up to a second (the page may render after
        // `load`, from fetched data), then reload.
        const reloadAt = Math.min(Date.now() + RELOAD_EVERY_MS, deadline);
        for (;;) {
          try {
            state = await page.evaluate(pageState, { advice: ADVICE_EDGE });
          } catch {
            // The page navigated by itself while being inspected: look again.
            state = null;
          }
          missing = unmet(state);
          if (missing.length === 0 || errors.length > 0 || Date.now() >= reloadAt) break;
          await sleep(INSPECT_EVERY_MS);
        }
        if (missing.length === 0) {
          // Give late errors (from the page's scripts) a moment to show.
          await sleep(500);
          break;
        }
        if (errors.length > 0 || Date.now() >= deadline) break;
        await page.reload({ waitUntil: 'load', timeout: navTimeout() });
      }
    } catch (e) {
      errors.push(`navigation failed: ${e.message.split('\n')[0]}`);
    }

    try {
      await mkdir(path.dirname(path.resolve(screenshotPath)), { recursive: true });
      await page.screenshot({ path: screenshotPath, fullPage: true, timeout: 15_000 });
    } catch (e) {
      errors.push(`screenshot failed: ${e.message.split('\n')[0]}`);
    }
  } finally {
    await withTimeout(browser?.close(), 10_000).catch((e) =>
      console.error(`dashboard: closing the browser: ${e.message}`),
    );
  }

  if (missing.length === 0 && errors.length === 0) {
    console.log(
      JSON.stringify({
        ok: true,
        components: state.components,
        edges: state.edges,
        advice: state.advice,
      }),
    );
    return 0;
  }
  if (missing.length > 0) {
    const why = errors.length > 0 ? 'stopped early because of the errors below' : `timed out after ${waitMs} ms`;
    console.error(`dashboard: FAILED (${why}) at ${url}; not met:`);
    for (const m of missing) console.error(`  - ${m}`);
  } else {
    console.error(`dashboard: FAILED at ${url}: the page is complete but reported errors`);
  }
  if (errors.length > 0) {
    console.error(`dashboard: ${errors.length} error(s):`);
    for (const e of errors) console.error(`  - ${e}`);
  }
  if (state) console.error(`dashboard: last state: ${JSON.stringify(state)}`);
  return 1;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(`dashboard: FAILED: ${e.stack || e}`);
}
clearTimeout(hardTimer);
process.exit(code);
