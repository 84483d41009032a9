/**
 * `duet serve --redis URL` and `--workers N`: where the topics live when several processes
 * serve them, and the primary process of `--workers`.
 *
 * With `--redis`, every process (workers, or separate `duet serve`s on other machines) keeps
 * its topics in Redis (duet/redis). With `--workers` and no Redis, the workers share topics
 * through the primary process (ClusterBroker in each worker, serveClusterBroker in the
 * primary). Either way the ticker publishes from one
 * process only: each second, the process that holds the `ticker` lease.
 */
import cluster from 'node:cluster';
import type { AsynchronousBroker } from '../push/broker.js';
import { listeningLine, openLine } from './options.js';
import { watchParent } from './parent.js';

/** Most processes `--workers` starts. */
export const MAX_WORKERS = 64;
/** The ticker's lease lasts this long, renewed every second by its holder. */
export const TICKER_LEASE_MS = 3000;
/** Default prefix of `duet serve`'s Redis keys. */
export const DEFAULT_REDIS_PREFIX = 'duet:serve:';

/** A broker shared by several processes, which can also hand out leases. */
export interface SharedBroker extends AsynchronousBroker {
  lease(name: string, ttlMs: number): Promise<boolean>;
}

/**
 * The broker of this process: Redis with `--redis`; the cluster's primary for a worker of
 * `--workers` without Redis; none (in memory) otherwise.
 */
export async function sharedTopics(
  redisUrl: string | undefined,
  prefix: string | undefined,
  worker: boolean,
): Promise<{ broker: SharedBroker } | undefined> {
  if (redisUrl !== undefined) {
    let redis: typeof import('../redis/index.js');
    try {
      redis = await import('../redis/index.js');
    } catch (err) {
      if (err instanceof Error && /ioredis/.test(err.message))
        throw new Error('--redis needs the ioredis package: npm install ioredis', { cause: err });
      throw err;
    }
    const keys = prefix ?? DEFAULT_REDIS_PREFIX;
    // Named after the prefix in CLIENT LIST (duet-serve:<prefix>:<id>:commands), so an
    // operator sees which application a connection serves.
    const connectionName = `duet-serve:${keys.replace(/[^\w:.-]/g, '_')}`;
    const broker = await redis.RedisBroker.connect({ url: redisUrl, prefix: keys, redis: { connectionName } });
    return { broker };
  }
  if (worker) {
    const { ClusterBroker } = await import('../push/cluster-broker.js');
    const broker = new ClusterBroker();
    // The primary's answer names its memory of publish ids, which /channel announces from its
    // first connection on (without it, clients would be told not to resend).
    await broker.ready();
    return { broker };
  }
  return undefined;
}

/** How the primary of `--workers` was asked to run. */
export interface PrimaryOptions {
  workers: number;
  /** The workers use Redis (else they share topics through this process). */
  redis: boolean;
  scheme: 'ws' | 'wss';
  host: string;
  port: number;
  /** The demo is built (for the line saying where to open it). */
  demo: boolean;
  /** --exit-with-parent: stop the workers when the process that started this one ends. */
  exitWithParent: boolean;
}

/**
 * The primary process of `--workers`: fork the workers (each runs `duet serve` with the same
 * arguments and listens on the same port, node:cluster sharing it), print the LISTENING line
 * once all listen, start a worker again when one dies, and on SIGINT/SIGTERM stop them all.
 * Resolves with the exit code: 0 after a stop, 1 when a worker could not start.
 */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  // Without Redis the workers' topics, numbering, history and leases live here; advanced
  // serialization passes payloads as bytes over IPC (docs/push.md has the measurements).
  cluster.setupPrimary({ serialization: 'advanced' });
  let primary: { close(): void } | undefined;
  if (!options.redis) {
    const { serveClusterBroker } = await import('../push/cluster-primary.js');
    primary = serveClusterBroker({ onError: (err) => console.error(`duet: ${err.message}`) });
  }
  const code = await workers(options);
  primary?.close();
  return code;
}

function workers(options: PrimaryOptions): Promise<number> {
  return new Promise<number>((resolve) => {
    let alive = 0;
    let listening = 0;
    let ready = false;
    let stopping = false;
    let exitCode = 0;
    let restarts: number[] = [];

    const fork = (): void => {
      alive++;
      cluster.fork();
    };
    const stopAll = (): void => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    };
    cluster.on('listening', (_worker, address) => {
      if (ready || ++listening < options.workers) return;
      ready = true;
      const bound = { address: address.address ?? options.host, family: '', port: address.port };
      console.log(listeningLine(options.scheme, options.host, bound, options.port));
      console.log(
        openLine(
          options.scheme,
          options.host,
          address.port,
          options.demo ? 'the demo' : 'the test page (npm run build:demo builds the demo)',
        ),
      );
    });
    cluster.on('exit', (worker, code, signal) => {
      alive--;
      const how = signal ?? `code ${code}`;
      if (stopping) {
        if (alive === 0) resolve(exitCode);
        return;
      }
      if (!ready) {
        // A worker that cannot start (Redis unreachable, the port taken): it said why; the
        // others are stopped and duet serve fails.
        console.error(`duet: a worker exited before listening (${how}); stopping`);
        stopping = true;
        exitCode = 1;
        if (alive === 0) resolve(exitCode);
        else stopAll();
        return;
      }
      // A worker died while serving: its clients reconnect to the others; start a new one,
      // at most 5 a minute so that a worker that always crashes does not spin.
      const now = Date.now();
      restarts = restarts.filter((at) => now - at < 60_000);
      if (restarts.length >= 5) {
        console.error(`duet: worker ${worker.process.pid} exited (${how}); not restarted (5 restarts in a minute)`);
        if (alive === 0) {
          stopping = true;
          resolve(1);
        }
        return;
      }
      restarts.push(now);
      console.error(`duet: worker ${worker.process.pid} exited (${how}); starting another`);
      fork();
    });
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      if (alive === 0) resolve(exitCode);
      else stopAll();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (options.exitWithParent) watchParent(stop);
    for (let i = 0; i < options.workers; i++) fork();
  });
}
