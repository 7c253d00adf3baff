// Sends one identify, track, page, group and alias through Segment's official Node client
// (@segment/analytics-node) to a CCM, as an application would. Run by tests/ingest/test_node_client.py.
//
//   node send.mjs <host> <writeKey> [messageIdPrefix]
//
// With a messageIdPrefix every call gets the messageId "<prefix>-<type>" (the client's documented
// override for deduping); without one the client makes its own. Every HTTP request the client
// makes and every answer it gets is printed to stdout as one JSON line ({"request": …} or
// {"response": …}), so the test sees the client's habits; each error event goes to stderr, and an
// error, or a call not delivered within closeAndFlush's timeout, makes the exit status 1.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, prefix] = process.argv.slice(2)
if (!host || !writeKey) {
  console.error('usage: node send.mjs <host> <writeKey> [messageIdPrefix]')
  process.exit(2)
}

const analytics = new Analytics({
  writeKey,
  host,
  flushAt: 20, // one batch for the whole run, flushed by closeAndFlush
  flushInterval: 60000,
  maxRetries: 2, // the default is 10, with up to a minute of backoff between tries
  httpRequestTimeout: 5000,
})

const types = ['identify', 'track', 'page', 'group', 'alias']
let delivered = 0
for (const type of types) analytics.on(type, () => delivered++)
let failed = false
analytics.on('error', (error) => {
  failed = true
  console.error(JSON.stringify({ code: error.code, reason: String(error.reason), type: error.ctx?.event.type }))
})
analytics.on('http_request', ({ url, method, headers, body }) => {
  console.log(JSON.stringify({ request: { url, method, headers, body: JSON.parse(body) } }))
})
analytics.on('http_response', ({ status, headers }) => {
  console.log(JSON.stringify({ response: { status, headers } }))
})

const id = (type) => (prefix ? { messageId: `${prefix}-${type}` } : {})
const userId = 'node-1'

analytics.identify({
  userId,
  anonymousId: 'node-device-1',
  traits: { email: 'Linus@Example.com', firstName: 'Linus', lastName: 'Tor', phone: '+33 6 12 34 56 78', plan: 'pro' },
  ...id('identify'),
})
analytics.track({
  userId,
  event: 'Order Completed',
  properties: { orderId: 'o-1', total: 42.5, currency: 'EUR', products: [{ sku: 'p-1', quantity: 2 }] },
  ...id('track'),
})
analytics.page({ userId, category: 'Docs', name: 'Pricing', properties: { path: '/pricing' }, ...id('page') })
analytics.group({ userId, groupId: 'org-1', traits: { name: 'Acme', employees: 12 }, ...id('group') })
analytics.alias({ userId, previousId: 'node-device-1', ...id('alias') })

// On timeout closeAndFlush resolves and the undelivered calls fail after it: count what arrived.
await analytics.closeAndFlush({ timeout: 20000 })
if (delivered !== types.length && !failed) {
  failed = true
  console.error(JSON.stringify({ code: 'not_delivered', reason: `${delivered} of ${types.length} delivered` }))
}
process.exit(failed ? 1 : 0)
