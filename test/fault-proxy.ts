/**
 * A TCP proxy for tests that break the network on purpose, between a client and a server on
 * 127.0.0.1: cut every connection with FIN (a clean end) or RST (a reset), black-hole one
 * direction (bytes are accepted and dropped, so the sender's TCP sees nothing wrong: the way a
 * dead NAT mapping or a stuck middlebox looks), on the connections open now and, if asked, on
 * new ones too, or stall one direction (bytes wait, then arrive all at once: a link that
 * stopped delivering and recovers, as TCP retransmits what it held). The target can change (a
 * server restarted on another port), or refuse every connection for a while (a server that is
 * down).
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
  /** When each connection was accepted (Date.now()), refused ones included. */
  readonly acceptedAt: number[] = [];
  /** New connections are reset as soon as they are accepted (the server is down). */
  private refusing = false;
  /** Bytes dropped by black holes so far: client to server, server to client. */
  droppedUp = 0;
  droppedDown = 0;

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

  /**
   * Stop passing on the bytes going one way (or both) on every open connection: the proxy
   * stops reading them, so they wait in the sender's and the proxy's socket buffers (and,
   * once those are full, in the sender's own, its `bufferedAmount`), to arrive together at
   * heal().
   */
  stall(direction: Direction): void {
    for (const pair of this.pairs) {
      if (direction !== 'down') pair.client.pause();
      if (direction !== 'up') pair.server.pause();
    }
  }

  /** Every black hole and stall ends: bytes flow again both ways (those dropped meanwhile stay lost, those held arrive now). */
  heal(): void {
    this.newUpDead = this.newDownDead = false;
    for (const pair of this.pairs) {
      pair.upDead = pair.downDead = false;
      pair.client.resume();
      pair.server.resume();
    }
  }

  /**
   * The server goes down (true: every open connection is reset, new ones are reset as soon as
   * they come) or comes back (false).
   */
  refuse(on: boolean): void {
    this.refusing = on;
    if (on) this.cut('rst');
  }

  async close(): Promise<void> {
    this.cut('rst');
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    this.acceptedAt.push(Date.now());
    if (this.refusing) {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    const server = net.connect(this.targetPort, '127.0.0.1');
    const pair: Pair = { client, server, upDead: this.newUpDead, downDead: this.newDownDead };
    this.pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      if (!pair.upDead) server.write(chunk);
      else this.droppedUp += chunk.length;
    });
    server.on('data', (chunk: Buffer) => {
      if (!pair.downDead) client.write(chunk);
      else this.droppedDown += chunk.length;
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
