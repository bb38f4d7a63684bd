import { existsSync, mkdirSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type Browser, type HTTPRequest, launch, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { call, KEYS, startServer, testApiConfig, type TestServer } from './harness.js';

/**
 * `/docs` in a real browser: Debian's Chromium, headless, driven by puppeteer-core (which never
 * downloads a browser). The server is the real one on a TCP port, mounted under a path prefix as
 * behind an API Gateway stage, so every URL of the page and of the document must be relative.
 * The page must render the operations list from the assets the server itself serves, under its
 * Content-Security-Policy, and execute one authorised call ("Authorize", "Try it out", "Execute")
 * whose record then exists on the server.
 *
 * Then CORS as a browser enforces it: a page on another origin (`http://localhost:<port>`, which
 * the server's `api.cors.allowedOrigins` lists) creates and conditionally updates a record with
 * `fetch`, reading `ETag` for `If-Match`; the same page served from an origin not listed
 * (`http://127.0.0.1:<port>`) cannot, and its write never reaches the server.
 *
 * Nothing may leave localhost. Two guards, each recording what it stopped:
 * - the page's requests are intercepted, and any not to 127.0.0.1/localhost is aborted;
 * - the whole browser's traffic (its own background services too) goes through a proxy on
 *   127.0.0.1 that answers 403 to everything: Chromium sends loopback traffic direct, so only a
 *   request for somewhere else can reach it. Debian's Chromium still tries its update and
 *   sign-in services despite the flags; those are printed, and refused.
 */

const CHROMIUM = '/usr/bin/chromium';
const PREFIX = '/stage';
const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
const SCREENSHOT = `${OUTPUT}docs.png`;
/** The flags the issue names, each one kept off what a first run of a desktop browser would do. */
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let s: TestServer;
let browser: Browser;
let page: Page;
let proxy: Server;
/** Serves a blank page, from which scripts call the API cross-origin. */
let elsewhere: HttpServer;
let elsewherePort: number;
const proxySockets = new Set<Socket>();
const profile = tempDir('xronox-chromium-profile');
/** Requests for anywhere but localhost: by the page (aborted: the test fails), and by the browser itself (refused by the proxy). */
const offHostByPage: string[] = [];
const offHostByBrowser: string[] = [];
const cspViolations: string[] = [];
const pageErrors: string[] = [];

/** A new tab whose requests beyond localhost are aborted and recorded, and whose CSP violations and errors are recorded. */
async function guardedPage(): Promise<Page> {
  const tab = await browser.newPage();
  await tab.setRequestInterception(true);
  tab.on('request', (request: HTTPRequest) => {
    if (isLocal(request.url())) {
      void request.continue();
    } else {
      offHostByPage.push(`${request.method()} ${request.url()}`);
      void request.abort('blockedbyclient');
    }
  });
  tab.on('console', (message) => {
    if (/Content.Security.Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  tab.on('pageerror', (err) => pageErrors.push(err instanceof Error ? err.message : String(err)));
  return tab;
}

/** Types into a field as a user would, over what it held (Swagger UI fills in the examples). */
async function replaceText(selector: string, text: string): Promise<void> {
  await page.focus(selector);
  await page.keyboard.down('Control');
  await page.keyboard.press('KeyA');
  await page.keyboard.up('Control');
  await page.keyboard.press('Backspace');
  await page.type(selector, text);
}

function isLocal(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  if (protocol === 'data:' || protocol === 'blob:') return true;
  return hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]';
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`No Chromium at ${CHROMIUM}: install Debian's package "chromium" (apt-get install -y --no-install-recommends chromium); .ci/run does`);
  }
  proxy = createServer((socket) => {
    proxySockets.add(socket);
    socket.on('close', () => proxySockets.delete(socket));
    socket.once('data', (data: Buffer) => {
      offHostByBrowser.push(data.toString('latin1').split('\r\n')[0] ?? '');
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((done) => proxy.listen(0, '127.0.0.1', done));
  const proxyPort = (proxy.address() as AddressInfo).port;

  elsewhere = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!DOCTYPE html><title>elsewhere</title>'));
  await new Promise<void>((done) => elsewhere.listen(0, '127.0.0.1', done));
  elsewherePort = (elsewhere.address() as AddressInfo).port;

  s = await startServer({ basePath: PREFIX, api: testApiConfig({ cors: { allowedOrigins: [`http://localhost:${elsewherePort}`] } }) });
  browser = await launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile.path,
    args: [...FLAGS, '--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter', '--disable-domain-reliability', '--disable-client-side-phishing-detection', '--no-pings', '--disable-extensions', `--proxy-server=http://127.0.0.1:${proxyPort}`, '--window-size=1280,2000'],
    defaultViewport: { width: 1280, height: 2000 },
  });
  page = await guardedPage();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  profile.cleanup();
  await s?.close();
  for (const socket of proxySockets) socket.destroy();
  await new Promise((done) => proxy?.close(done));
  await new Promise((done) => elsewhere?.close(done));
});

describe('/docs and CORS in headless Chromium', () => {
  it('starts Chromium with the required flags and a fresh profile', () => {
    const spawnArgs = browser.process()?.spawnargs ?? [];
    for (const flag of FLAGS) expect(spawnArgs).toContain(flag);
    expect(spawnArgs).toContain(`--user-data-dir=${profile.path}`);
  });

  it('renders the operations list and executes an authorised call from the page, with nothing fetched beyond localhost', async () => {
    const docs = await page.goto(`${s.base}${PREFIX}/docs`, { waitUntil: 'load' });
    expect(docs?.status()).toBe(200);
    expect(docs?.headers()['content-security-policy']).toContain("script-src 'self'");

    // The operations list: each operation's summary, from the document the page fetched.
    await page.waitForSelector('#operations-Tenant_tier-tenantCreateRecord', { timeout: 60_000 });
    const summaries = await page.$$eval('.opblock-summary-description', (nodes) => nodes.map((n) => n.textContent ?? ''));
    expect(summaries).toContain('Create a record (ov 0)');
    expect(summaries).toContain('List records by indexed properties');
    expect(summaries).toContain("Replace a record's data (If-Match required)");

    // Authorize with an API key the server knows.
    await page.click('.scheme-container .btn.authorize');
    await page.waitForSelector('.auth-container input');
    await page.type('.auth-container input', KEYS.acmeWriter);
    await page.click('.auth-btn-wrapper .btn.modal-btn.authorize');
    await page.waitForSelector('.auth-btn-wrapper .btn-done');
    await page.click('.auth-btn-wrapper .btn-done');

    // Create a record: open the operation, "Try it out", fill it in, "Execute".
    const op = '#operations-Tenant_tier-tenantCreateRecord';
    const customer = `browser-${Math.random().toString(36).slice(2, 10)}`;
    await page.click(`${op} .opblock-summary-control`);
    await page.waitForSelector(`${op} .try-out__btn`);
    await page.click(`${op} .try-out__btn`);
    await replaceText(`${op} tr[data-param-name="tenantId"] input`, 'acme');
    await page.select(`${op} tr[data-param-name="databaseType"] select`, 'runtime');
    await replaceText(`${op} tr[data-param-name="collection"] input`, 'browser');
    await replaceText(`${op} textarea.body-param__text`, JSON.stringify({ customer }));
    await page.click(`${op} .execute`);
    await page.waitForSelector(`${op} .live-responses-table tbody .response-col_status`, { timeout: 30_000 });
    const status = await page.$eval(`${op} .live-responses-table tbody .response-col_status`, (n) => n.textContent?.trim());
    const shownUrl = await page.$eval(`${op} .request-url pre`, (n) => n.textContent?.trim());
    const shownBody = await page.$eval(`${op} .live-responses-table tbody .response-col_description pre`, (n) => n.textContent ?? '');

    mkdirSync(OUTPUT, { recursive: true });
    await page.$eval(`${op} .live-responses-table`, (n) => n.scrollIntoView());
    await page.screenshot({ path: SCREENSHOT });
    console.log(`Screenshot of /docs after the call: ${SCREENSHOT}`);

    expect(status).toBe('201');
    // Sent under the prefix: the document's relative server URL held.
    expect(shownUrl).toBe(`${s.base}${PREFIX}/v1/tenants/acme/runtime/browser`);
    const created = JSON.parse(shownBody) as { id: string; ov: number };
    expect(created.ov).toBe(0);

    // The record exists on the server, with the data typed into the page, written by that key.
    const read = await call(s.base, 'GET', `${PREFIX}/v1/tenants/acme/runtime/browser/${created.id}`, { key: KEYS.acmeReader });
    expect(read.status).toBe(200);
    expect(read.json).toMatchObject({ id: created.id, data: { customer } });
    const versions = await call(s.base, 'GET', `${PREFIX}/v1/tenants/acme/runtime/browser/${created.id}/versions`, { key: KEYS.acmeReader });
    expect(versions.json).toMatchObject({ items: [{ ov: 0, actor: { type: 'api', identifier: 'acme-writer' } }] });

    expect(cspViolations, 'Content-Security-Policy violations').toEqual([]);
    expect(pageErrors, 'errors thrown in the page').toEqual([]);
    expect(offHostByPage, 'requests of the page beyond localhost').toEqual([]);
    // Chromium's own services (update checks, sign-in) still try to phone home despite the
    // flags; the proxy refused each one, so none reached the network. Listed, not failed on:
    // they are the browser's, not the page's.
    if (offHostByBrowser.length > 0) console.log(`Refused by the proxy (Chromium's own background requests): ${[...new Set(offHostByBrowser.map((line) => line.split(' ').slice(0, 2).join(' ').replace(/\?.*/, '')))].join(', ')}`);
  }, 120_000);

  it('lets a page on an allowed origin create and conditionally update a record, and a page on another origin not', async () => {
    const api = `${s.base}${PREFIX}`;
    const collection = `cors-${Math.random().toString(36).slice(2, 10)}`;
    const script = async ({ api, key, collection }: { api: string; key: string; collection: string }) => {
      try {
        const headers = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
        const created = await fetch(`${api}/v1/tenants/acme/runtime/${collection}`, { method: 'POST', headers, body: JSON.stringify({ n: 1 }) });
        const { id } = (await created.json()) as { id: string };
        const etag = created.headers.get('ETag');
        const updated = await fetch(`${api}/v1/tenants/acme/runtime/${collection}/${id}`, { method: 'PUT', headers: { ...headers, 'If-Match': etag ?? '' }, body: JSON.stringify({ n: 2 }) });
        return { created: created.status, etag, location: created.headers.get('Location'), updated: updated.status, newEtag: updated.headers.get('ETag') };
      } catch (err) {
        return { failed: String(err) };
      }
    };

    const allowed = await guardedPage();
    await allowed.goto(`http://localhost:${elsewherePort}/`);
    expect(await allowed.evaluate(script, { api, key: KEYS.acmeWriter, collection })).toEqual({
      created: 201,
      etag: '"0"',
      location: expect.stringMatching(new RegExp(`^/v1/tenants/acme/runtime/${collection}/`)),
      updated: 200,
      newEtag: '"1"',
    });

    const other = await guardedPage();
    await other.goto(`http://127.0.0.1:${elsewherePort}/`);
    expect(await other.evaluate(script, { api, key: KEYS.acmeWriter, collection })).toEqual({ failed: 'TypeError: Failed to fetch' });

    // One record: the refused page's preflight failed, so its POST was never sent.
    const listed = await call(s.base, 'GET', `${PREFIX}/v1/tenants/acme/runtime/${collection}`, { key: KEYS.acmeReader });
    expect(listed.json).toMatchObject({ items: [{ ov: 1, data: { n: 2 } }] });
    expect((listed.json as { items: unknown[] }).items).toHaveLength(1);
    expect(offHostByPage, 'requests of the pages beyond localhost').toEqual([]);
    expect(pageErrors, 'errors thrown in the pages').toEqual([]);
  }, 60_000);
});
