// Signing in: a wrong token is refused where it was typed; the admin token gets the
// write controls; the read-only token sees everything and no control that writes, and
// the API refuses its writes anyway.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertNoErrors, env, launch, newPage, screenshot, signIn, tenantUrl } from './support.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('a wrong token is refused with a clear message at the token field', async () => {
  const page = await newPage(browser);
  await page.goto(env.consoleUrl);
  await page.getByLabel('Admin or read-only token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const error = page.locator('[data-field="token"] .field-error');
  await error.waitFor();
  assert.match(await error.textContent(), /refused \(401 Unauthorized\)/);
  assert.equal(await page.getByLabel('Admin or read-only token').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByRole('navigation', { name: 'Sections' }).isVisible(), false);
  assert.equal(await page.evaluate(() => window.sessionStorage.length), 0, 'a refused token is not kept');
  await screenshot(page, 'signin-refused');
  assertNoErrors(page);
});

test('the admin token signs in, is kept for the tab only, and shows write controls', async () => {
  const page = await newPage(browser);
  await signIn(page, env.adminToken);
  assert.equal(await page.locator('#scope').textContent(), 'admin');
  assert.equal(await page.evaluate(() => document.cookie), '', 'no cookie');
  await page.goto(`${env.consoleUrl}#/tiers/${env.tier}`);
  await page.getByRole('button', { name: 'Add limit' }).waitFor();
  // Reloading keeps the session (sessionStorage); signing out forgets it.
  await page.reload();
  await page.getByRole('button', { name: 'Add limit' }).waitFor();
  await screenshot(page, 'tier-admin');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Admin or read-only token').waitFor();
  assert.equal(await page.evaluate(() => window.sessionStorage.length), 0);
  assertNoErrors(page);
});

/** Every button and form label on the page once it has settled. */
async function controls(page) {
  await page.waitForLoadState('networkidle');
  const buttons = await page.locator('main button').evaluateAll((els) => els.map((b) => b.textContent.trim()));
  const forms = await page.locator('main form').evaluateAll((els) => els.map((f) => f.getAttribute('aria-label')));
  return { buttons, forms };
}

test('the read-only token shows no write control, and the API refuses its writes', async () => {
  const page = await newPage(browser);
  await signIn(page, env.readToken);
  assert.equal(await page.locator('#scope').textContent(), 'read-only');
  // What a reader may press: paging, search, filters, tree toggles.
  const reading = new Set(['← Previous page', 'Next page →', 'Search', 'Clear', 'Filter', 'Clear filters', '▸', '▾']);
  const readingForms = new Set(['Find tenants', 'Filter events', 'Filter assignments']);
  const pages = ['#/tenants', `#/tenants/${encodeURIComponent(env.trafficTenant)}`, '#/tiers', `#/tiers/${env.tier}`,
    '#/assignments', '#/events'];
  for (const hash of pages) {
    await page.goto(`${env.consoleUrl}${hash}`);
    await page.locator('main h1').waitFor();
    const { buttons, forms } = await controls(page);
    for (const button of buttons) assert.ok(reading.has(button), `${hash} shows the button “${button}” to a reader`);
    for (const form of forms) assert.ok(readingForms.has(form), `${hash} shows the form “${form}” to a reader`);
    if (hash.startsWith('#/tiers/')) await screenshot(page, 'tier-read-only');
  }
  await page.goto(tenantUrl(env.trafficTenant));
  await page.locator('.usage-row').first().waitFor();
  assert.equal(await page.getByRole('heading', { name: 'Correct usage' }).count(), 0);
  await screenshot(page, 'tenant-read-only');
  // The API, asked directly with the same token, refuses a write.
  const status = await page.evaluate(async (tier) => {
    const token = window.sessionStorage.getItem('tollgate.console.token');
    const response = await fetch(`/admin/v1/tiers/${tier}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ description: 'changed by a reader' }),
    });
    return response.status;
  }, env.tier);
  assert.equal(status, 403);
  assertNoErrors(page);
});
