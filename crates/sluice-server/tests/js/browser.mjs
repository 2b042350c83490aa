// Analytics.js 2.0 wrapped by Segment's consent tools, in Debian's headless Chromium driven by
// playwright-core (no browser download), on a page served from another origin than Sluice.
//
// Usage: node browser.mjs <sluice URL> <page origin> <out dir> <write key> [consent|batch|refused]
// The caller serves <out dir> at <page origin>; this script bundles the page into it first.
// Scenarios: `consent` (default) a visitor who grants, then withdraws, advertising consent;
// `batch` two track calls in one batch; `refused` a track call from a page the source does not allow.
// Talks to the caller on stdout (one JSON object a line) and stdin (a line to go on):
//   {"phase":"granted"}  (consent) after the grant and one more event; waits for a line on stdin
//   {"phase":"done", ...} at the end, with what the browser saw
import * as esbuild from 'esbuild'
import { chromium } from 'playwright-core'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

const [sluice, pageOrigin, out, writeKey, scenario = 'consent'] = process.argv.slice(2)
const here = dirname(fileURLToPath(import.meta.url))
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

await esbuild.build({
  entryPoints: [join(here, 'page', 'entry.js')],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'chrome100',
  outfile: join(out, 'bundle.js'),
  logLevel: 'error',
})
copyFileSync(join(here, 'page', 'index.html'), join(out, 'index.html'))

const executablePath = process.env.SLUICE_TEST_CHROMIUM || '/usr/bin/chromium'
const profile = mkdtempSync(join(tmpdir(), 'sluice-chromium-'))
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
})
const seen = { consoleErrors: [], pageErrors: [], foreign: [], settings: [], posts: [] }
try {
  const page = context.pages()[0] ?? (await context.newPage())
  page.on('console', (m) => {
    if (m.type() === 'error') seen.consoleErrors.push(m.text())
  })
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)))
  context.on('request', (r) => {
    const o = new URL(r.url()).origin
    if (o !== sluice && o !== pageOrigin && !r.url().startsWith('data:')) seen.foreign.push(r.url())
  })
  page.on('response', async (r) => {
    const req = r.request()
    if (!r.url().startsWith(sluice + '/')) return
    const h = await req.allHeaders()
    const entry = {
      method: req.method(),
      path: new URL(r.url()).pathname,
      status: r.status(),
      origin: h.origin ?? null,
      allowOrigin: (await r.allHeaders())['access-control-allow-origin'] ?? null,
    }
    if (req.method() === 'POST') {
      entry.contentType = h['content-type'] ?? null
      entry.authorization = h.authorization ?? null
      entry.event = req.postDataJSON()
      seen.posts.push(entry)
    } else seen.settings.push(entry)
  })
  const ok = () => seen.posts.filter((p) => p.status === 200).length
  const waitPosts = async (n) => {
    const deadline = Date.now() + 15000
    while (ok() < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    if (ok() < n) throw new Error(`only ${ok()} of ${n} events were accepted: ${JSON.stringify(seen)}`)
  }

  await page.goto(`${pageOrigin}/index.html`)
  const cfg = { writeKey, cdnURL: sluice }
  if (scenario === 'refused') {
    // the settings are refused, so Analytics.js never loads and a call fails instead of posting
    seen.load = await page.evaluate(async (cfg) => {
      window.shop.start(cfg) // ready() never settles: Analytics.js is not loaded
      window.analytics.track('Refused')
      const deadline = new Promise((resolve) => setTimeout(() => resolve('still loading after 15 s'), 15000))
      const loaded = window.analytics.then(
        () => 'loaded',
        (e) => `failed: ${e?.message ?? e}`,
      )
      return Promise.race([loaded, deadline])
    }, cfg)
  } else if (scenario === 'batch') {
    // two calls, one batch of two: POST /v1/b
    await page.evaluate((cfg) => window.shop.start({ ...cfg, batch: 2 }), cfg)
    await page.evaluate(() => {
      window.analytics.track('Hello', { from: 'a page' })
      window.analytics.track('Bye')
    })
    await waitPosts(1)
  } else {
    await page.evaluate((cfg) => window.shop.start(cfg), cfg)
    // the visitor has not consented to advertising (C0004) yet
    await page.evaluate(async () => {
      await window.analytics.page('Shop', 'Pricing')
      await window.analytics.identify('user-42', { email: 'ada@example.com' })
      await window.analytics.track('Viewed Pricing', { plan: 'pro' })
    })
    await waitPosts(3)
    // the consent manager reports a grant: the wrapper sends Segment Consent Preference Updated
    await page.evaluate(() => window.shop.cmp.set({ C0004: true, C0002: true }))
    await waitPosts(4)
    await page.evaluate(() => window.analytics.track('Added to Cart', { sku: 'A-1' }))
    await waitPosts(5)
    say({ phase: 'granted' })
    await lines.next()
    // the visitor withdraws advertising consent again
    await page.evaluate(() => window.shop.cmp.set({ C0004: false, C0002: true }))
    await waitPosts(6)
    await page.evaluate(() => window.analytics.track('Viewed Cart'))
    await waitPosts(7)
  }
} finally {
  await context.close()
  rmSync(profile, { recursive: true, force: true })
}
say({ phase: 'done', ...seen })
