// graphql-sse's own client, in distinct connections mode (one request per subscription),
// subscribes to productEvents at URL (with TOKEN as its bearer token, when given) and
// prints, as one JSON line, the first COUNT events it receives; a result with errors, or a
// failure of the client, is printed as {"error": ...} and exits 1.
//
//   node sse_client.mjs URL COUNT [TOKEN]
import { createClient } from 'graphql-sse';

const [url, countText, token] = process.argv.slice(2);
const count = Number(countText);
const client = createClient({
  url,
  headers: token ? { Authorization: `Bearer ${token}` } : {},
  singleConnection: false,
  retryAttempts: 0,
});

const query = `subscription {
  productEvents { position type product { id stock } }
}`;
const events = [];
const timer = setTimeout(() => fail(`only ${events.length} of ${count} events in 45 s`), 45_000);

function fail(error) {
  clearTimeout(timer);
  console.log(JSON.stringify({ error: String(error?.message ?? error), events }));
  client.dispose();
  process.exit(1);
}

try {
  for await (const result of client.iterate({ query })) {
    if (result.errors) fail(JSON.stringify(result.errors));
    events.push(result.data.productEvents);
    if (events.length === count) break; // leaving the loop closes the stream
  }
} catch (error) {
  fail(error);
}
clearTimeout(timer);
client.dispose();
console.log(JSON.stringify(events));
