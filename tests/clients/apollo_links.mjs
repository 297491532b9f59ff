// Apollo Client's own links against a served orderdesk, as a frontend team wires them:
// PersistedQueryLink (automatic persisted queries, over POST or with useGETForHashedQueries)
// and BatchHttpLink. Prints one JSON line: what the queries answered and what went over the
// wire (method, whether the text and the hash were sent, operations per request).
//
//   node apollo_links.mjs URL apq|apq-get|batch|apq-batch TOKEN
import { createHash } from "node:crypto";

import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { BatchHttpLink } from "@apollo/client/link/batch-http";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const [url, mode, token] = process.argv.slice(2);
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const sent = [];

function describe(operation, method) {
  return {
    method,
    hasQuery: typeof operation.query === "string" && operation.query.length > 0,
    hasHash: Boolean(operation.extensions?.persistedQuery?.sha256Hash),
    operationName: operation.operationName ?? null,
  };
}

async function recordingFetch(uri, options) {
  const method = (options?.method ?? "POST").toUpperCase();
  if (method === "GET") {
    const params = new URL(uri).searchParams;
    const extensions = params.get("extensions");
    sent.push(
      describe(
        {
          query: params.get("query"),
          extensions: extensions ? JSON.parse(extensions) : null,
          operationName: params.get("operationName"),
        },
        method,
      ),
    );
  } else {
    const body = JSON.parse(options.body);
    if (Array.isArray(body)) {
      sent.push({ method, batch: body.map((operation) => describe(operation, method)) });
    } else {
      sent.push(describe(body, method));
    }
  }
  return fetch(uri, options);
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

function persisted(options = {}) {
  return new PersistedQueryLink({ sha256, ...options });
}

function client(link) {
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

const PRODUCTS = gql`
  query Products {
    products(first: 5) {
      totalCount
    }
  }
`;
const FIRST = gql`
  query First {
    products(first: 1) {
      totalCount
    }
  }
`;
const TYPENAME = gql`
  query Root {
    __typename
  }
`;
const CREATE = gql`
  mutation Create($sku: String!) {
    createProduct(input: { sku: $sku, name: "Anvil", price: "1.00", stock: 3 }) {
      __typename
    }
  }
`;

async function run() {
  if (mode === "apq" || mode === "apq-get") {
    const http = new HttpLink({ uri: url, headers, fetch: recordingFetch });
    const apollo = client(persisted({ useGETForHashedQueries: mode === "apq-get" }).concat(http));
    const results = [];
    for (let n = 0; n < 2; n++) {
      // Each mode its own document: the other's is registered already.
      const query = mode === "apq" ? PRODUCTS : FIRST;
      const { data } = await apollo.query({ query, fetchPolicy: "network-only" });
      results.push(data);
    }
    return { results, sent };
  }
  const batch = new BatchHttpLink({
    uri: url,
    headers,
    fetch: recordingFetch,
    batchMax: 5,
    batchInterval: 20,
  });
  const link = mode === "apq-batch" ? persisted().concat(batch) : batch;
  const apollo = client(link);
  const queries = await Promise.all(
    [PRODUCTS, FIRST, TYPENAME].map((query) =>
      apollo.query({ query, fetchPolicy: "network-only" }).then(({ data }) => data),
    ),
  );
  const created = await apollo.mutate({ mutation: CREATE, variables: { sku: `LINK-${mode}` } });
  const after = await apollo.query({ query: PRODUCTS, fetchPolicy: "network-only" });
  return {
    results: queries,
    created: created.data,
    after: after.data,
    sent,
  };
}

run().then(
  (outcome) => {
    console.log(JSON.stringify(outcome));
  },
  (error) => {
    console.error(error);
    console.log(JSON.stringify({ error: String(error?.message ?? error), sent }));
    process.exit(1);
  },
);
