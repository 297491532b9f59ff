"""GraphiQL, served from this package: it works where no CDN can be reached.

The page runs queries and mutations over HTTP and subscriptions over graphql-transport-ws
against /graphql. Headers typed into GraphiQL's header editor (say, Authorization) go with
each HTTP request and in the websocket's connection_init payload, and are never persisted.
The page has no inline script, so its Content-Security-Policy can forbid inline scripts.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).parent / "static" / "graphiql"
ASSETS_PATH = "/graphiql/static"

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""GraphiQL's own scripts and styles only. Its components set style attributes, which
needs 'unsafe-inline' for styles (never for scripts); `connect-src 'self'` covers the
websocket of the same origin in current browsers."""

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>orderdesk · GraphiQL</title>
  <link rel="stylesheet" href="{ASSETS_PATH}/graphiql.min.css">
  <link rel="stylesheet" href="{ASSETS_PATH}/orderdesk-graphiql.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{ASSETS_PATH}/react.production.min.js"></script>
  <script src="{ASSETS_PATH}/react-dom.production.min.js"></script>
  <script src="{ASSETS_PATH}/graphql-ws.min.js"></script>
  <script src="{ASSETS_PATH}/graphiql.min.js"></script>
  <script src="{ASSETS_PATH}/orderdesk-graphiql.js"></script>
</body>
</html>
"""
