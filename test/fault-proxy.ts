/**
 * A TCP proxy for tests that break the network on purpose, between a client and a server on
 * 127.0.0.1: cut every connection with FIN (a clean end) or RST (a reset), or black-hole one
 * direction (bytes are accepted and dropped, so the sender's TCP sees nothing wrong: the way a
 * dead NAT mapping or a stuck middlebox looks), on the connections open now and, if asked, on
 * new ones too. The target can change (a server restarted on another port).
 */
import * as net from 'node:net';
import { once } from 'node:events';

/** 'up': client to server; 'down': server to client. */
export type Direction = 'up' | 'down' | 'both';

interface Pair {
  client: net.Socket;
  server: net.Socket;
  /** Bytes client -> server are dropped. */
  upDead: boolean;
  /** Bytes server -> client are dropped. */
  downDead: boolean;
}

export class FaultProxy {
  /** Where new connections go. */
  targetPort: number;
  private readonly server: net.Server;
  private readonly pairs = new Set<Pair>();
  /** Black holes that new connections get too. */
  private newUpDead = false;
  private newDownDead = false;
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(targetPort: number) {
    this.targetPort = targetPort;
    this.server = net.createServer((client) => this.accept(client));
  }

  /** A proxy on 127.0.0.1, a free port, forwarding to 127.0.0.1:`targetPort`. */
  static async start(targetPort: number): Promise<FaultProxy> {
    const proxy = new FaultProxy(targetPort);
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Connections open now. */
  get open(): number {
    return this.pairs.size;
  }

  /** End every open connection at both ends: 'fin' with a clean TCP end, 'rst' with a reset. */
  cut(how: 'fin' | 'rst'): void {
    for (const pair of [...this.pairs]) {
      this.pairs.delete(pair);
      for (const socket of [pair.client, pair.server]) {
        if (how === 'rst') socket.resetAndDestroy();
        else {
          socket.end();
          // A peer that never answers the FIN must not keep the socket forever.
          setTimeout(() => socket.destroy(), 2000).unref();
        }
      }
    }
  }

  /**
   * Drop the bytes going one way (or both) on every open connection; with `newConnections`,
   * on connections made later too (their handshake then never completes in that direction).
   */
  blackhole(direction: Direction, { newConnections = false } = {}): void {
    const up = direction !== 'down';
    const down = direction !== 'up';
    for (const pair of this.pairs) {
      pair.upDead ||= up;
      pair.downDead ||= down;
    }
    if (newConnections) {
      this.newUpDead ||= up;
      this.newDownDead ||= down;
    }
  }

  /** Every black hole ends: bytes flow again both ways (those dropped meanwhile stay lost). */
  heal(): void {
    this.newUpDead = this.newDownDead = false;
    for (const pair of this.pairs) pair.upDead = pair.downDead = false;
  }

  async close(): Promise<void> {
    this.cut('rst');
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    const server = net.connect(this.targetPort, '127.0.0.1');
    const pair: Pair = { client, server, upDead: this.newUpDead, downDead: this.newDownDead };
    this.pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      if (!pair.upDead) server.write(chunk);
    });
    server.on('data', (chunk: Buffer) => {
      if (!pair.downDead) client.write(chunk);
    });
    // A clean end on one side is passed on as a clean end; anything else ends both at once.
    client.on('end', () => server.end());
    server.on('end', () => client.end());
    const gone = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      server.destroy();
    };
    client.on('close', gone);
    server.on('close', gone);
    client.on('error', gone);
    server.on('error', gone);
  }
}
