// Tiers and limits: a refused edit shows the API's reason under the field it names; an
// accepted one shows in the event log with what changed; a usage reset asks first.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertNoErrors, env, launch, newPage, screenshot, signIn, tenantUrl } from './support.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function editMonthlyLimit(page) {
  await page.goto(`${env.consoleUrl}#/tiers/${env.tier}`);
  await page.getByRole('button', { name: 'Edit limit request_bytes per month' }).click();
  return page.getByRole('form', { name: 'Edit limit request_bytes per month' });
}

test('an invalid limit is refused with the reason next to the field it names', async () => {
  const page = await newPage(browser);
  await signIn(page, env.adminToken);
  const form = await editMonthlyLimit(page);
  await form.getByLabel('Warn at (fraction of quota)').fill('2');
  await form.getByRole('button', { name: 'Save limit' }).click();
  const error = form.locator('[data-field="warn_at"] .field-error');
  await error.waitFor();
  assert.match(await error.textContent(), /fraction from 0 to 1/);
  assert.equal(await form.locator('[data-field="quota"] .field-error').isVisible(), false, 'only the named field');
  await screenshot(page, 'limit-field-error');
  assertNoErrors(page);
});

test('an edited limit shows in the event log with what changed', async () => {
  const page = await newPage(browser);
  await signIn(page, env.adminToken);
  const form = await editMonthlyLimit(page);
  const quota = form.getByLabel('Quota', { exact: true });
  const old = await quota.inputValue();
  const raised = String(Number(old) + 5_000);
  await quota.fill(raised);
  await form.getByRole('button', { name: 'Save limit' }).click();
  await page.locator('table.limits td.num', { hasText: Number(raised).toLocaleString('en-US') }).first().waitFor();

  await page.getByRole('link', { name: 'Events' }).click();
  await page.getByLabel('Kind or family').fill('limit.updated');
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  const newest = page.locator('table.events tbody tr').first();
  await newest.locator('code', { hasText: 'limit.updated' }).waitFor();
  assert.match(await newest.locator('.details').textContent(), new RegExp(`quota: ${old} → ${raised}`));
  await screenshot(page, 'events-limit-updated');
  assertNoErrors(page);
});

test('a usage reset asks first, then the bar goes to zero', async () => {
  const page = await newPage(browser);
  await signIn(page, env.adminToken);
  await page.goto(tenantUrl(env.trafficTenant));
  const reset = page.getByRole('form', { name: 'Reset usage' });
  await reset.waitFor();
  await reset.getByLabel('Resource').selectOption('request_bytes');
  await reset.getByRole('button', { name: 'Reset usage…' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /Reset .*'s own usage \(request_bytes/);
  await screenshot(page, 'usage-reset-confirm');
  await dialog.getByRole('button', { name: 'Reset' }).click();
  await reset.locator('.form-status', { hasText: 'Reset: request_bytes per month' }).waitFor();
  await page.waitForFunction(
    (selector) => document.querySelector(selector)?.getAttribute('aria-valuenow') === '0',
    `.usage-row[data-resource="request_bytes"][data-period="month"][data-tenant="${env.trafficTenant}"] .bar`,
  );
  assertNoErrors(page);
});
