/**
 * The broker interface: how published messages reach every process's Hub. The in-memory
 * broker delivers straight back to the one Hub of this process; a networked broker (Redis,
 * NATS) would implement the same two methods to connect several processes.
 */

/** A message as it travels between Hubs: already framed payload plus routing facts. */
export interface BrokerMessage {
  topic: string;
  /** The message's bytes (not yet framed). */
  payload: Buffer;
  /** Sent as a binary message (else text). */
  binary: boolean;
  /** false: the publisher asked for no compression. */
  compress?: boolean;
  /** The message's sequence number in its topic (0: the topic keeps none here). */
  seq: number;
  /** The topic's epoch: a new one means its sequence started over. */
  epoch: string;
}

/** How published messages reach the Hub of every process (MemoryBroker: this process only). */
export interface Broker {
  /** Register the function that delivers messages to local subscribers (called once). */
  attach(deliver: (message: BrokerMessage, exclude: unknown) => void): void;
  /** Send a message to every Hub; `exclude` (a local connection) only matters locally. */
  publish(message: BrokerMessage, exclude?: unknown): void;
}

/** One process, no network: publish is local delivery. */
export class MemoryBroker implements Broker {
  private deliver: ((message: BrokerMessage, exclude: unknown) => void) | undefined;

  attach(deliver: (message: BrokerMessage, exclude: unknown) => void): void {
    this.deliver = deliver;
  }

  publish(message: BrokerMessage, exclude?: unknown): void {
    this.deliver?.(message, exclude);
  }
}
