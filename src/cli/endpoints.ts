/**
 * The endpoints `duet serve` offers, on one push-enabled WebSocketServer:
 *   /echo    every message back to its sender, same type
 *   /chat    every message to every client on /chat, the sender included, in order
 *   /ticker  one JSON tick a second to every client: {"type":"tick","seq":N,"time":ISO,"value":V}
 *   /channel the JSON channel protocol (docs/protocol.md) with topics `chat` (clients publish)
 *            and `ticker` (server only), each keeping its last 100 messages for recovery, and
 *            `presence` (clients publish, no history): who is online, see PRESENCE below
 *   GET /channel/recent?topic=T  (HTTP) where to subscribe from to receive what topic T keeps,
 *            so that a page opened later shows the recent chat: see recentPosition
 * The ticker's value is a random walk, published once and framed once for all subscribers.
 */
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from '../node/connection.js';
import { CHANNEL_TOPIC_PREFIX, Channel } from '../push/channel.js';
import type { WebSocketServer } from '../push/server.js';

/** Paths that speak WebSocket. */
export const WEBSOCKET_PATHS = ['/echo', '/chat', '/ticker', '/channel'] as const;

/** Messages each /channel topic keeps for recovery (0: none). */
export const CHANNEL_HISTORY: Readonly<Record<string, number>> = { chat: 100, ticker: 100, presence: 0 };

/** The HTTP path of recentPosition. */
export const RECENT_PATH = '/channel/recent';

/** The answer of `GET /channel/recent?topic=T`. */
export interface RecentPosition {
  topic: string;
  /** The topic's epoch and last seq now. */
  epoch: string;
  seq: number;
  /**
   * The seq just before the oldest message the topic keeps: subscribe with this `since` (and
   * `epoch`) to receive the kept messages, then live ones. Equal to `seq` for a topic that
   * keeps none.
   */
  since: number;
}

/**
 * Where to subscribe from to get a topic's recent history (the channel protocol replays only
 * what a client asks for, and a fresh subscribe asks for nothing): its position and the seq
 * before its oldest kept message. Undefined for a topic /channel does not have.
 */
export async function recentPosition(channel: Channel, topic: string): Promise<RecentPosition | undefined> {
  if (!Object.hasOwn(CHANNEL_HISTORY, topic)) return undefined;
  const { epoch, seq } = await channel.positionAsync(topic);
  return { topic, epoch, seq, since: Math.max(0, seq - CHANNEL_HISTORY[topic]) };
}

export interface Tick {
  type: 'tick';
  seq: number;
  time: string;
  value: number;
}

/**
 * PRESENCE, a convention between clients on the `presence` topic: after its `hello`, each
 * client publishes `{"state":"join"|"here"|"leave"}`, and the server stamps who it is from
 * (`from: { id, nick }`; entries naming anyone are refused). `join` when it (re)connects,
 * `here` every PRESENCE_INTERVAL_MS, after a nick change, and once in answer to someone else's
 * `join` (so a newcomer learns who is there within a second), `leave` when the page goes away;
 * the server says `leave` for a connection that said `hello` when it closes. A client counts
 * someone as online until PRESENCE_EXPIRY_MS pass without hearing from them, so vanished
 * clients drop out without any presence state on the server. No history: presence is only
 * meaningful live, and a reconnecting client re-announces itself and hears the others.
 */
export const PRESENCE_INTERVAL_MS = 5000;
/** See PRESENCE_INTERVAL_MS: three missed announcements and someone is gone. */
export const PRESENCE_EXPIRY_MS = 16_000;

/** Fields of `chat` and `presence` data that would name a sender: the server's `from` does. */
const IDENTITY_FIELDS = ['id', 'nick', 'from'];

/** How the endpoints run when several processes serve them. */
export interface EndpointOptions {
  /**
   * Several processes share the topics (a broker over Redis or the cluster's primary): each
   * second, the ticker publishes only if this resolves true (a lease one process holds), so
   * clients get one tick a second in all, not one per process.
   */
  tickerLeader?: () => Promise<boolean>;
}

/** Wire the endpoints to `wss` and start the ticker. Returns the /channel handler. */
export function attachEndpoints(wss: WebSocketServer, options: EndpointOptions = {}): Channel {
  const channel = new Channel(wss, {
    topics: {
      chat: { history: { size: CHANNEL_HISTORY.chat }, identityFields: IDENTITY_FIELDS },
      ticker: { history: { size: CHANNEL_HISTORY.ticker }, publish: false },
      // The protocol has no presence of its own; clients announce themselves here instead.
      presence: { history: false, identityFields: IDENTITY_FIELDS },
    },
  });
  // A page that reconnects gets a new id: say its old connection's `leave` at once, instead of
  // showing it twice until PRESENCE_EXPIRY_MS. Not while shutting down, where every
  // connection closes and nobody is left to tell.
  let shuttingDown = false;
  wss.on('shutdown', () => {
    shuttingDown = true;
  });
  const sayLeave = function (this: WebSocket): void {
    if (!shuttingDown && channel.identity(this)?.nick !== undefined)
      channel.publish('presence', { state: 'leave' }, { from: this });
  };
  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    switch (pathOf(req)) {
      case '/echo':
        ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
        break;
      case '/chat':
        ws.subscribe('chat');
        ws.on('message', (data, isBinary) => {
          wss.publish('chat', data as Buffer, { binary: isBinary });
        });
        break;
      case '/ticker':
        ws.subscribe('ticker');
        break;
      case '/channel':
        channel.accept(ws);
        ws.once('close', sayLeave);
        break;
    }
  });

  let value = 100;
  const tick = (seq: number): void => {
    // A random walk, rounded to cents, that never goes below 1.
    value = Math.max(1, Math.round((value + (Math.random() - 0.5) * 2) * 100) / 100);
    const message: Tick = { type: 'tick', seq, time: new Date().toISOString(), value };
    wss.publish('ticker', JSON.stringify(message));
    channel.publish('ticker', message);
  };
  const leader = options.tickerLeader;
  if (leader === undefined) {
    wss.every(1000, (run) => tick(run));
    return channel;
  }
  // Several processes: the lease holder ticks. One that takes over goes on from the last tick
  // (its count and value, read back from the ticker topic's history), so clients see one
  // ticker, not a jump when the leader changes.
  let count = 0;
  let leading = false;
  wss.every(1000, () => {
    leader().then(
      async (held) => {
        if (!held || shuttingDown) {
          leading = false;
          return;
        }
        if (!leading) {
          leading = true;
          const last = await lastTick(wss, channel);
          if (last !== undefined && last.seq > count) {
            count = last.seq;
            value = last.value;
          }
        }
        tick(++count);
      },
      // Not the leader, or the broker unreachable (reported by the broker): no tick from here.
      () => undefined,
    );
  });
  return channel;
}

/** The last tick published on the channel's `ticker` topic (any process), from its history; undefined if none or unreadable. */
async function lastTick(wss: WebSocketServer, channel: Channel): Promise<Tick | undefined> {
  try {
    const { epoch, seq } = await channel.positionAsync('ticker');
    if (seq === 0) return undefined;
    const { messages } = await wss.hub.recoverAsync(CHANNEL_TOPIC_PREFIX + 'ticker', seq - 1, epoch);
    return (JSON.parse(messages[0].payload.toString()) as { data: Tick }).data;
  } catch {
    // History gone (a new epoch, a flushed Redis) or the broker unreachable: start afresh.
    return undefined;
  }
}

export function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
