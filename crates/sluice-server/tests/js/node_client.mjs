// Segment's own Node.js library (@segment/analytics-node from npm, unmodified) against `sluice serve`.
// Usage: node node_client.mjs <sluice URL> <write key>. Exits non-zero on any client error.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, flushInterval: 50, maxRetries: 2, httpRequestTimeout: 5000 })
const errors = []
analytics.on('error', (e) => errors.push(`${e?.code ?? 'error'}: ${e?.reason ?? e}`))
const answers = []
analytics.on('http_request', (r) => answers.push(`${r.method} ${r.url}`))

const consent = (ads) => ({ consent: { categoryPreferences: { C0004: ads, C0002: true } } })
analytics.identify({ userId: 'node-1', traits: { email: 'n1@example.com', plan: 'pro' }, context: consent(true) })
analytics.track({ userId: 'node-1', event: 'Order Completed', properties: { revenue: 42.5 }, context: consent(true) })
analytics.track({ userId: 'node-2', event: 'Order Completed', properties: { revenue: 7 }, context: consent(false) })
analytics.page({ userId: 'node-2', category: 'Docs', name: 'Pricing', properties: { path: '/pricing' }, context: consent(false) })
analytics.group({ userId: 'node-1', groupId: 'acme', traits: { name: 'Acme' }, context: consent(true) })
// the consent change of R9, as Segment's consent tools send it: node-2 now grants advertising
analytics.track({ userId: 'node-2', event: 'Segment Consent Preference Updated', context: consent(true) })
analytics.alias({ userId: 'node-1b', previousId: 'node-1' })
await analytics.closeAndFlush({ timeout: 10000 })

console.log(JSON.stringify({ errors, requests: answers }))
process.exit(errors.length ? 1 : 0)
