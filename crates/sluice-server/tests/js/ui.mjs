// The web UI clicked through in Debian's headless Chromium, driven by playwright-core (no browser
// download), with the keyboard where a person would use it.
//
// Usage: node ui.mjs <sluice URL> <owner token> <member token> <screenshot dir>
// Prints one JSON object on its last line: what each step saw, console errors, page errors.
// The caller (../ui_browser.rs) asserts on it.
import { chromium } from 'playwright-core'
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const [base, ownerToken, memberToken, shots] = process.argv.slice(2)
mkdirSync(shots, { recursive: true })
const executablePath = process.env.SLUICE_TEST_CHROMIUM || '/usr/bin/chromium'
const profile = mkdtempSync(join(tmpdir(), 'sluice-ui-chromium-'))
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1366, height: 860 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
})
const seen = { consoleErrors: [], pageErrors: [], steps: {} }
const step = (name, value) => { seen.steps[name] = value }
try {
  const page = context.pages()[0] ?? (await context.newPage())
  page.setDefaultTimeout(20000)
  page.on('console', (m) => {
    if (m.type() !== 'error') return
    if (seen.expectedErrors && m.text().includes('403')) return
    seen.consoleErrors.push(`${page.url()}: ${m.text()}`)
  })
  page.on('pageerror', (e) => seen.pageErrors.push(`${page.url()}: ${e}`))
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true })
  const flash = async () => (await page.locator('.flash').allTextContents()).join(' | ')

  // login: any page without a session lands on the login form
  await page.goto(`${base}/ui/consent-categories`)
  step('redirectedTo', new URL(page.url()).pathname)
  await shot('01-login')
  await page.getByLabel('API token').fill(ownerToken)
  await page.keyboard.press('Enter')
  await page.waitForURL(`${base}/ui/`)
  step('home', await page.locator('h1').textContent())
  await shot('02-home')

  // consent categories (owner): create one, then disable it after typing its name
  await page.getByRole('link', { name: 'Consent categories' }).click()
  await page.getByLabel('Id (your consent tool').fill('C0003')
  await page.getByLabel('Name (1–20 characters)').fill('Functional')
  await page.locator('form[action="/ui/consent-categories"]').getByLabel('CRM').check()
  await page.getByRole('button', { name: 'Create category' }).click()
  step('created', await flash())
  const row = page.locator('tr', { hasText: 'C0003' })
  step('createdRow', await row.textContent())
  await page.getByText('Edit Functional (C0003)').click()
  const disable = page.getByRole('button', { name: 'Disable Functional' })
  step('disableBeforeTyping', await disable.isDisabled())
  await page.getByLabel(/Type its name to confirm/).last().fill('Functional')
  step('disableAfterTyping', await disable.isDisabled())
  await shot('03-categories-disable')
  await disable.click()
  step('disabled', await flash())
  step('disabledRow', await page.locator('tr', { hasText: 'C0003' }).first().textContent())
  await shot('04-categories-owner')

  // a model: map a consent column with the picker, then run a sync and read its funnel
  await page.getByRole('link', { name: 'Models' }).click()
  await shot('05-models')
  await page.getByRole('link', { name: 'p', exact: true }).click()
  step('checkBefore', await page.locator('#consent ~ p.flash').first().textContent())
  await page.getByLabel('Analytics (C0002)').selectOption('analytics')
  await page.getByRole('button', { name: 'Save consent mapping' }).click()
  step('mapped', await flash())
  step('checkAfter', await page.locator('#consent ~ p.flash').first().textContent())
  await page.getByRole('button', { name: 'Run sync now' }).click()
  // the destinations answer slowly: the page shows the run's progress, polled by the served script
  await page.locator('#progress', { hasText: 'running' }).waitFor({ timeout: 10000 })
  step('progressText', await page.locator('#progress').textContent())
  await shot('06a-model-sync-running')
  // the served script follows the run and reloads the page when it ends
  await page.getByRole('heading', { name: /Delivery overview of run #/ }).waitFor({ timeout: 30000 })
  const funnels = await page.locator('figure.funnel svg').evaluateAll((svgs) =>
    svgs.map((svg) => {
      const labels = [...svg.querySelectorAll('text.label')].map((t) => t.textContent)
      const values = [...svg.querySelectorAll('text.value')].map((t) => t.textContent)
      return Object.fromEntries(labels.map((l, i) => [l, values[i]]))
    }))
  step('funnels', funnels)
  await shot('06-model-after-sync')

  // the debugger: a withheld event and its category
  await page.getByRole('link', { name: 'Debugger' }).click()
  await page.getByRole('link', { name: 'web' }).click()
  step('debuggerWithheld', await page.locator('td', { hasText: 'Withheld by consent' }).first().textContent())
  await shot('07-debugger')

  // a profile with a consent conflict, found by the search form
  await page.getByRole('link', { name: 'Profiles' }).click()
  await page.getByLabel('userId or anonymousId').fill('b')
  await page.keyboard.press('Enter')
  await page.waitForURL(`${base}/ui/profiles/b`)
  step('profileAlert', await page.getByRole('alert').textContent())
  step('profileConsent', await page.locator('tr', { hasText: 'C0004' }).textContent())
  await shot('08-profile')

  for (const [name, link] of [['09-sources', 'Sources'], ['10-destinations', 'Destinations'], ['11-usage', 'Usage'], ['12-audit-log', 'Audit log']]) {
    await page.getByRole('link', { name: link, exact: true }).click()
    await shot(name)
  }
  step('auditFirst', await page.locator('tbody tr').first().textContent())
  await page.getByRole('link', { name: 'Home', exact: true }).click()
  step('homeWithheld', await page.locator('.card', { hasText: 'Withheld by consent today' }).textContent())
  await shot('15-home-after-sync')

  await page.getByRole('button', { name: 'Log out' }).click()
  step('afterLogout', new URL(page.url()).pathname)

  // the same pages as a member: no changing controls; a forged post is refused by the server
  await page.getByLabel('API token').fill(memberToken)
  await page.keyboard.press('Enter')
  await page.waitForURL(`${base}/ui/`)
  await page.goto(`${base}/ui/consent-categories`)
  step('memberForms', await page.locator('main form[method="post"]').count())
  step('memberButtons', await page.locator('main button').count())
  step('memberNote', await page.getByRole('note').textContent())
  await shot('13-categories-member')
  await page.goto(`${base}/ui/models/p`)
  step('memberModelSelects', await page.locator('main select').count())
  await shot('14-model-member')
  // the refusal is expected here: Chromium logs a 403 answer as a console error
  seen.expectedErrors = true
  step('memberForged', await page.evaluate(async () => {
    const csrf = document.querySelector('input[name="csrf"]').value
    const body = new URLSearchParams({ csrf, id: 'C0099', name: 'Forged' })
    const res = await fetch('/ui/consent-categories', { method: 'POST', body, redirect: 'manual' })
    return res.status
  }))
} catch (e) {
  seen.error = String(e && e.stack ? e.stack : e)
} finally {
  await context.close()
  rmSync(profile, { recursive: true, force: true })
}
process.stdout.write(JSON.stringify(seen) + '\n')
