// Tenants among many: the trees page by cursor, a prefix finds one tenant, a long id
// fits, and traffic sent through Envoy moves the tenant's usage bar.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  assertNoErrors, env, launch, newPage, screenshot, sendThroughGateway, signIn, tenantUrl,
} from './support.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('the trees page by cursor and a prefix finds one tenant among many', async () => {
  const page = await newPage(browser);
  await signIn(page, env.adminToken);
  await page.goto(`${env.consoleUrl}#/tenants`);
  const roots = page.locator('ul.tree-roots > li');
  await roots.first().waitFor();
  assert.equal(await roots.count(), 25, 'a full page of roots');
  const firstPage = await roots.first().locator('a').textContent();
  await page.getByRole('button', { name: 'Next page of trees' }).click();
  await page.getByText('Page 2: trees 26–50').waitFor();
  assert.notEqual(await roots.first().locator('a').textContent(), firstPage);

  // The children of a root, on demand.
  const root = await roots.first().locator('a').textContent();
  await page.getByRole('button', { name: `Show children of ${root}` }).click();
  await roots.first().locator('ul.tree > li').first().waitFor();
  await screenshot(page, 'tenants-tree');

  const prefix = env.findTenant.slice(0, -1);
  await page.getByLabel('Find tenants whose id starts with').fill(prefix);
  await page.getByRole('button', { name: 'Search' }).click();
  const found = page.getByRole('link', { name: env.findTenant, exact: true });
  await found.waitFor();
  const rows = await page.locator('table.list tbody tr').count();
  assert.ok(rows >= 1 && rows <= 25, `${rows} rows`);
  for (const id of await page.locator('table.list tbody tr td:first-child a').allTextContents()) {
    assert.ok(id.startsWith(prefix), `${id} does not start with ${prefix}`);
  }
  await screenshot(page, 'tenants-search');
  await found.click();
  await page.locator('main h1 .long', { hasText: env.findTenant }).waitFor();
  assert.match(page.url(), new RegExp(`#/tenants/${encodeURIComponent(env.findTenant)}$`));
  assertNoErrors(page);
});

test('a long tenant id fits: cut with an ellipsis, whole in its title', async () => {
  const page = await newPage(browser);
  await signIn(page, env.adminToken);
  await page.goto(tenantUrl(env.longTenant));
  const title = page.locator('main h1 .long');
  await title.waitFor();
  const box = await title.evaluate((el) => ({
    cut: el.scrollWidth > el.clientWidth,
    right: el.getBoundingClientRect().right,
    title: el.getAttribute('title'),
    page: document.documentElement.clientWidth,
    overflow: document.documentElement.scrollWidth > document.documentElement.clientWidth,
  }));
  assert.equal(box.title, env.longTenant);
  assert.ok(box.cut, 'the heading is cut with an ellipsis');
  assert.ok(box.right <= box.page, 'the heading ends inside the page');
  assert.equal(box.overflow, false, 'the page does not scroll sideways');
  await page.locator('.usage-row').first().waitFor();
  await screenshot(page, 'tenant-long-id');
  assertNoErrors(page);
});

test('traffic through Envoy moves the tenant\'s usage bar', async () => {
  const page = await newPage(browser);
  await signIn(page, env.adminToken);
  await page.goto(tenantUrl(env.trafficTenant));
  const row = page.locator(`.usage-row[data-resource="request_bytes"][data-period="month"][data-tenant="${env.trafficTenant}"]`);
  await row.waitFor();
  const meter = row.getByRole('meter');
  const before = Number(await meter.getAttribute('aria-valuenow'));
  assert.equal(await sendThroughGateway(env.trafficTenant, 3_000), 200);
  // The page reads usage every two seconds on its own.
  await page.waitForFunction(
    ([selector, want]) => Number(document.querySelector(selector)?.getAttribute('aria-valuenow')) === want,
    [`.usage-row[data-resource="request_bytes"][data-period="month"][data-tenant="${env.trafficTenant}"] .bar`, before + 3_000],
    { timeout: 10_000 },
  );
  const used = await row.locator('.figure.used dd').textContent();
  assert.equal(used, (before + 3_000).toLocaleString('en-US'));
  const labels = await row.locator('dt').allTextContents();
  for (const label of ['used', 'warn at', 'quota', 'hard limit', 'remaining', 'resets in']) {
    assert.ok(labels.includes(label), `the bar's numbers include “${label}”: ${labels}`);
  }
  const width = await row.locator('.fill').evaluate((el) => el.getBoundingClientRect().width);
  assert.ok(width > 0, 'the bar is filled');
  await page.locator('.level').first().waitFor();
  await screenshot(page, 'tenant-usage');
  assertNoErrors(page);
});
