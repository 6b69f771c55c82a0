// What every console test shares: the addresses and tokens the Rust test passes in the
// environment, Debian's chromium driven by playwright-core, signing in, screenshots,
// and a check that the page logged no error (a refused script or style would).

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run these tests through tests/tests/console.rs (cargo test -p tollgate-e2e --test console)`);
  return value;
}

export const env = {
  consoleUrl: required('CONSOLE_URL'),
  adminToken: required('CONSOLE_ADMIN_TOKEN'),
  readToken: required('CONSOLE_READ_TOKEN'),
  gatewayUrl: required('CONSOLE_GATEWAY_URL'),
  screenshots: required('CONSOLE_SCREENSHOTS'),
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  /** A tenant on the tier with a monthly request_bytes limit, for traffic. */
  trafficTenant: required('CONSOLE_TRAFFIC_TENANT'),
  /** A tenant with a 128-character id. */
  longTenant: required('CONSOLE_LONG_TENANT'),
  /** One tenant among the many. */
  findTenant: required('CONSOLE_FIND_TENANT'),
  /** The tier of the traffic tenant. */
  tier: required('CONSOLE_TIER'),
};

/**
 * Chromium, headless. playwright-core gives it a fresh profile (`--user-data-dir`) of
 * its own in a temporary folder and removes it on close; the flags keep it from
 * reaching for hosts it cannot reach (updates, sync, QUIC).
 */
export async function launch() {
  assert.ok(existsSync(env.chromium), `${env.chromium} is missing: run scripts/setup.sh (it installs Debian's chromium)`);
  return chromium.launch({
    executablePath: env.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A fresh page (its own sessionStorage) that records what it logs as an error;
 * `page.errors` is the list.
 */
export async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.errors = [];
  page.on('console', (message) => {
    // A refusal the test provokes (401, 403, 422) is logged by the browser too.
    const refused = message.text().includes('the server responded with a status of 4');
    if (message.type() === 'error' && !refused) page.errors.push(message.text());
  });
  page.on('pageerror', (error) => page.errors.push(String(error)));
  page.setDefaultTimeout(10_000);
  return page;
}

/** Opens the console and signs in with `token`. */
export async function signIn(page, token) {
  await page.goto(env.consoleUrl);
  await page.getByLabel('Admin or read-only token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Sections' }).waitFor();
}

/** Saves a screenshot of the whole page as `<name>.png` in the screenshots folder. */
export async function screenshot(page, name) {
  mkdirSync(env.screenshots, { recursive: true });
  await page.screenshot({ path: join(env.screenshots, `${name}.png`), fullPage: true });
}

/** Fails when the page logged an error (a policy violation, a script error). */
export function assertNoErrors(page) {
  assert.deepEqual(page.errors, [], 'the page logged errors');
}

/** Sends `bytes` of body through the gateway as `tenant`; returns the status. */
export async function sendThroughGateway(tenant, bytes) {
  const response = await fetch(`${env.gatewayUrl}/upload`, {
    method: 'POST',
    headers: { 'x-tenant-id': tenant, 'content-type': 'application/octet-stream' },
    body: new Uint8Array(bytes),
  });
  await response.arrayBuffer();
  return response.status;
}

/** The console's address of a tenant. */
export function tenantUrl(id) {
  return `${env.consoleUrl}#/tenants/${encodeURIComponent(id)}`;
}
