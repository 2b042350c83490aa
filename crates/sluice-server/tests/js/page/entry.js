// The test page's bundle: Analytics.js 2.0 (@segment/analytics-next) wrapped by Segment's consent
// tools (@segment/analytics-consent-tools), both unmodified from npm, and a stand-in consent
// manager (what OneTrust or another CMP does on a real site).
import { AnalyticsBrowser } from '@segment/analytics-next'
import { createWrapper } from '@segment/analytics-consent-tools'

const listeners = []
const cmp = {
  prefs: { C0004: false, C0002: true },
  set(prefs) {
    cmp.prefs = prefs
    listeners.forEach((f) => f(prefs))
  },
}

/** Loads Analytics.js with settings from `cdnURL` (Sluice) and the consent wrapper; `batch`
 * events: Analytics.js's batching delivery (`POST /v1/b`) with that many events a batch. */
function start({ writeKey, cdnURL, batch }) {
  const analytics = new AnalyticsBrowser()
  createWrapper({
    shouldLoadSegment: (ctx) => ctx.load({ consentModel: 'opt-in' }),
    getCategories: () => cmp.prefs,
    registerOnConsentChanged: (f) => listeners.push(f),
  })(analytics)
  // no apiHost here: the Segment.io settings from Sluice say where to post
  const options = { disableClientPersistence: true }
  if (batch) {
    const deliveryStrategy = { strategy: 'batching', config: { size: batch, timeout: 60000 } }
    options.integrations = { 'Segment.io': { deliveryStrategy } }
  }
  analytics.load({ writeKey, cdnURL }, options)
  window.analytics = analytics
  return analytics.ready().then(() => true)
}

window.shop = { start, cmp }
