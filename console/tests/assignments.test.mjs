// Assignments: a refused one shows each reason under its field; an accepted one is
// listed, changes the tenant's effective quota, and is deleted after a confirmation.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertNoErrors, env, launch, newPage, screenshot, signIn, tenantUrl } from './support.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('an assignment is refused at its fields, then created, shown as the winner and deleted', async () => {
  const page = await newPage(browser);
  await signIn(page, env.adminToken);
  await page.goto(`${env.consoleUrl}#/assignments`);
  const create = page.getByRole('form', { name: 'New assignment' });
  await create.getByLabel('Tier').fill('no-such-tier');
  await create.getByLabel('Tenant').fill(env.findTenant);
  await create.getByRole('button', { name: 'Create assignment' }).click();
  const tierError = create.locator('[data-field="tier"] .field-error');
  await tierError.waitFor();
  assert.match(await tierError.textContent(), /tier no-such-tier does not exist/);
  await screenshot(page, 'assignment-field-error');

  await create.getByLabel('Tier').fill('org');
  await create.getByRole('button', { name: 'Create assignment' }).click();
  await page.waitForURL(/#\/assignments\?created=\d+$/);
  const id = new URL(page.url().replace('#/', '')).searchParams.get('created');
  const row = page.locator(`tr[data-assignment="${id}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), new RegExp(`${env.findTenant}.*org.*300`));
  await screenshot(page, 'assignments');

  // The tenant's page says this assignment won, and why.
  await page.goto(tenantUrl(env.findTenant));
  const level = page.locator('.level').first();
  await level.locator('.winner', { hasText: `assignment #${id}` }).waitFor();
  assert.match(await level.textContent(), /Tier org/);

  await page.goto(`${env.consoleUrl}#/assignments`);
  await row.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });
  assertNoErrors(page);
});
