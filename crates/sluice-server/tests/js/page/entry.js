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

/** Loads Analytics.js with settings from `cdnURL` (Sluice) and the consent wrapper. */
function start({ writeKey, cdnURL }) {
  const analytics = new AnalyticsBrowser()
  createWrapper({
    shouldLoadSegment: (ctx) => ctx.load({ consentModel: 'opt-in' }),
    getCategories: () => cmp.prefs,
    registerOnConsentChanged: (f) => listeners.push(f),
  })(analytics)
  // no apiHost here: the Segment.io settings from Sluice say where to post
  analytics.load({ writeKey, cdnURL }, { disableClientPersistence: true })
  window.analytics = analytics
  return analytics.ready().then(() => true)
}

window.shop = { start, cmp }
