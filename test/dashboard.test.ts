// The ops dashboard in a real headless Chromium (Debian's chromium, driven by playwright-core):
// the page served by the test cluster's controller loads, shows a migration this test runs, and
// follows it through its phases without a reload. A screenshot is kept in test/artifacts/.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { API_VERSION, PHASES } from '../api/v1alpha1/migration.ts';
import type { Client } from '../cli/client.ts';
import { waitForMigration } from '../cli/watch.ts';
import { controllerUrl, runWorkload, testCluster, unique } from './helpers.ts';

const ARTIFACTS = 'test/artifacts';
let c: Client;
let browser: Browser;

before(async () => {
  c = await testCluster();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    // As root, and on a machine whose network is closed: no sandbox, no background connections.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});
after(async () => {
  await browser?.close();
  await c.close();
});

test('the dashboard shows a migration and follows it through its phases, live', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('console', (msg) => msg.type() === 'error' && problems.push(msg.text()));
  await page.goto(`${await controllerUrl()}/`);
  await page.waitForSelector('#conn.live');
  const loadedAt = await page.evaluate(() => performance.timeOrigin);

  const container = unique('dash');
  const name = unique('m-dash');
  await runWorkload(c, 'node1', container, 64);
  // Record every phase the page shows for the migration's row, as it changes.
  await page.evaluate((n) => {
    const w = window as unknown as { seen: string[] };
    w.seen = [];
    setInterval(() => {
      const phase = document.querySelector(`tr[data-migration="${n}"]`)?.getAttribute('data-phase');
      if (phase && w.seen.at(-1) !== phase) w.seen.push(phase);
    }, 50);
  }, name);

  await c.store.create({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec: { source: { node: 'node1', container }, target: { node: 'node2' } },
  });
  const m = await waitForMigration(c, 'default', name, () => undefined, 300_000);
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  await page.waitForSelector(`tr[data-migration="${name}"][data-phase="Succeeded"]`, { timeout: 10_000 });
  // The recorder samples every 50 ms: let it see the row's last phase before reading what it saw.
  await page.waitForFunction(
    () => (window as unknown as { seen: string[] }).seen.at(-1) === 'Succeeded',
    null,
    {
      timeout: 2_000,
    },
  );

  const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
  assert.equal(seen.at(-1), 'Succeeded');
  assert.ok(seen.length >= 3, `the page showed only ${seen.join(' → ')}`);
  const order = seen.map((p) => PHASES.indexOf(p as (typeof PHASES)[number]));
  assert.deepEqual(
    [...order].sort((a, b) => a - b),
    order,
    `phases out of order: ${seen.join(' → ')}`,
  );
  assert.equal(await page.evaluate(() => performance.timeOrigin), loadedAt, 'the page reloaded');

  // The live view of the migration: one bar per phase it went through, and its figures.
  await page.click(`tr[data-migration="${name}"]`);
  await page.waitForSelector(`#live[data-migration="${name}"]`);
  const bars = await page.$$eval('#timeline rect', (rs) => rs.map((r) => r.getAttribute('data-phase')));
  assert.ok(bars.includes('Transferring') && bars.includes('Succeeded'), `timeline bars: ${bars.join(', ')}`);
  const row = await page.textContent(`tr[data-migration="${name}"]`);
  assert.match(row ?? '', /node1\/dash-\w+/);
  assert.match(row ?? '', /MiB/);
  const nodes = await page.$$eval('#nodes tr', (trs) => trs.map((tr) => tr.getAttribute('data-node')));
  assert.ok(nodes.includes('node1') && nodes.includes('node2'));

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/dashboard.png`, fullPage: true });
  assert.deepEqual(problems, []);
  await c.bus.call('node2', { kind: 'remove', container });
});

test('the dashboard’s feed and page are served with the right types; unknown paths are 404', async () => {
  const base = await controllerUrl();
  const page = await fetch(`${base}/`);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  const o = (await (await fetch(`${base}/api/overview`)).json()) as { cluster: string; nodes: unknown[] };
  assert.equal(o.cluster, 'test');
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/nothing`)).status, 404);
  assert.equal((await fetch(`${base}/api/overview`, { method: 'POST' })).status, 405);
});
