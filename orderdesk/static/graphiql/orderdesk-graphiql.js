// GraphiQL against this server's /graphql: queries and mutations over HTTP, subscriptions
// over graphql-transport-ws. Headers typed into the header editor go with each HTTP request
// and, for subscriptions, in the websocket's connection_init payload. They are never stored
// in localStorage: a bearer token left there outlives the tab and is open to any script of
// this origin. One socket is kept for the headers in use; new headers open a new one.
(function () {
  "use strict";
  const url = new URL(location.pathname, location.href).href;
  let socket = null;
  let socketHeaders = null;

  function socketFor(headers) {
    const key = JSON.stringify(headers || {});
    if (socket === null || socketHeaders !== key) {
      if (socket !== null) socket.dispose();
      socketHeaders = key;
      socket = graphqlWs.createClient({
        url: url.replace(/^http/, "ws"),
        lazy: true,
        connectionParams: headers || {},
      });
    }
    return socket;
  }

  function fetcher(params, options) {
    const wsClient = socketFor(options && options.headers);
    return GraphiQL.createFetcher({ url, wsClient })(params, options);
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: true,
    }),
  );
})();
