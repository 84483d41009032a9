/**
 * graphql-ws on duet: graphql-ws's server (`useServer`, written for ws) on duet's
 * WebSocketServer, with graphql-ws's own client over two WebSocket implementations: ws (an
 * independent peer) and duet's client. A query and a subscription, and the subprotocol that
 * graphql-ws picks by setting `wss.options.handleProtocols` after the server was made.
 * 127.0.0.1 only.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { GraphQLInt, GraphQLObjectType, GraphQLSchema, GraphQLString } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import WsWebSocket from 'ws';
import { WebSocket, WebSocketServer } from '../../src/index.js';
import { HOST } from '../helpers.js';

const T = { timeout: 30_000 };

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: 'Query',
    fields: {
      hello: {
        type: GraphQLString,
        args: { name: { type: GraphQLString } },
        resolve: (_root, args: { name?: string }) => `Hello, ${args.name ?? 'world'}!`,
      },
    },
  }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      count: {
        type: GraphQLInt,
        args: { to: { type: GraphQLInt } },
        subscribe: async function* (_root, args: { to: number }) {
          for (let i = 1; i <= args.to; i++) {
            await new Promise((resolve) => setImmediate(resolve));
            yield { count: i };
          }
        },
      },
    },
  }),
});

let wss: WebSocketServer;
let disposeServer: () => void | Promise<void>;
let url: string;
/** The connection object graphql-ws saw for each connection (its `extra.socket`). */
const sockets: unknown[] = [];

/** Every result of one operation, until it completes. */
async function results(client: Client, query: string): Promise<unknown[]> {
  const seen: unknown[] = [];
  for await (const result of client.iterate({ query })) seen.push(result);
  return seen;
}

describe("graphql-ws's server on duet's WebSocketServer", () => {
  before(async () => {
    wss = new WebSocketServer({ port: 0, host: HOST, path: '/graphql' });
    await once(wss, 'listening');
    url = `ws://${HOST}:${(wss.address() as { port: number }).port}/graphql`;
    // useServer's parameter is @types/ws's server class, which duet's is a drop-in for at run
    // time but not structurally (docs/server.md, "What differs: the types").
    const server = useServer(
      {
        schema,
        onConnect: (ctx) => {
          sockets.push(ctx.extra.socket);
        },
      },
      wss as unknown as Parameters<typeof useServer>[1],
    );
    disposeServer = server.dispose;
  });

  after(async () => {
    await disposeServer();
  });

  for (const [name, impl] of [
    ['ws', WsWebSocket],
    ['duet', WebSocket],
  ] as const) {
    it(`a query and a subscription, with graphql-ws's client over ${name}'s WebSocket`, T, async () => {
      const client = createClient({ url, webSocketImpl: impl, retryAttempts: 0, lazy: true });
      try {
        assert.deepEqual(await results(client, '{ hello(name: "duet") }'), [{ data: { hello: 'Hello, duet!' } }]);
        assert.deepEqual(await results(client, 'subscription { count(to: 5) }'), [
          { data: { count: 1 } },
          { data: { count: 2 } },
          { data: { count: 3 } },
          { data: { count: 4 } },
          { data: { count: 5 } },
        ]);
        // An invalid query is answered with GraphQL errors (the iterator throws them), and the
        // connection carries on.
        await assert.rejects(results(client, '{ nope }'), (errors: Array<{ message: string }>) => {
          assert.match(errors[0]?.message ?? '', /Cannot query field "nope"/);
          return true;
        });
        assert.deepEqual(await results(client, '{ hello }'), [{ data: { hello: 'Hello, world!' } }]);
        assert.ok(sockets.at(-1) instanceof WebSocket, 'graphql-ws talks to a duet connection');
      } finally {
        await client.dispose();
      }
    });
  }

  it(
    "the subprotocol is graphql-ws's choice: wss.options.handleProtocols set after construction is used",
    T,
    async () => {
      // Offered first, the old subscriptions-transport-ws protocol would be picked by default.
      const client = new WebSocket(url, ['graphql-ws', 'graphql-transport-ws']);
      await once(client, 'open');
      assert.equal(client.protocol, 'graphql-transport-ws');
      client.close();
      await once(client, 'close');
    },
  );
});
