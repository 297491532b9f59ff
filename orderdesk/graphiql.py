"""GraphiQL, served from this package: it works where no CDN can be reached.

The page runs queries and mutations over HTTP and subscriptions over graphql-transport-ws
against /graphql. Headers typed into GraphiQL's header editor (say, Authorization) go with
each HTTP request and in the websocket's connection_init payload.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).parent / "static" / "graphiql"
ASSETS_PATH = "/graphiql/static"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>orderdesk · GraphiQL</title>
  <link rel="stylesheet" href="{ASSETS_PATH}/graphiql.min.css">
  <style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{ASSETS_PATH}/react.production.min.js"></script>
  <script src="{ASSETS_PATH}/react-dom.production.min.js"></script>
  <script src="{ASSETS_PATH}/graphql-ws.min.js"></script>
  <script src="{ASSETS_PATH}/graphiql.min.js"></script>
  <script>
    const url = new URL(location.pathname, location.href).href;
    const headers = () => {{
      try {{ return JSON.parse(localStorage.getItem("graphiql:headers") || "{{}}"); }}
      catch {{ return {{}}; }}
    }};
    const wsClient = graphqlWs.createClient({{
      url: url.replace(/^http/, "ws"),
      lazy: true,
      connectionParams: headers,
    }});
    const fetcher = GraphiQL.createFetcher({{ url, wsClient }});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{
        fetcher,
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: true,
        defaultEditorToolsVisibility: true,
      }}),
    );
  </script>
</body>
</html>
"""
