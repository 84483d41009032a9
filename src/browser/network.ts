/**
 * The browser's hints about the network and the tab: `navigator.onLine`, the `online` and
 * `offline` events of `window`, `visibilitychange` of `document`. Each is used only where it
 * exists, so workers, Node and server-side rendering run the same code with none of them.
 */
import type { DuetEnvironment } from './types.js';

/** What the watcher reports. */
export interface NetworkHost {
  /** The network came back. */
  online(): void;
  /** The network went away (the open connection may be dead). */
  offline(): void;
  /** The tab became visible again. */
  visible(): void;
}

export class NetworkWatcher {
  private readonly env: DuetEnvironment | undefined;
  private watching = false;
  private readonly onOnline: () => void;
  private readonly onOffline: () => void;
  private readonly onVisibility: () => void;

  constructor(env: DuetEnvironment | undefined, host: NetworkHost) {
    this.env = env;
    this.onOnline = () => host.online();
    this.onOffline = () => host.offline();
    this.onVisibility = () => {
      if (this.env?.document?.visibilityState === 'visible') host.visible();
    };
  }

  /** False only when the browser says so: `navigator.onLine` true is a guess, false is reliable. */
  get offline(): boolean {
    return this.env?.navigator?.onLine === false;
  }

  /** Start (true) or stop (false) listening; idempotent. */
  watch(on: boolean): void {
    if (on === this.watching) return;
    this.watching = on;
    const env = this.env;
    const doc = env?.document;
    const method = on ? 'addEventListener' : 'removeEventListener';
    if (env && typeof env[method] === 'function') {
      env[method]('online', this.onOnline);
      env[method]('offline', this.onOffline);
    }
    if (doc && typeof doc[method] === 'function') doc[method]('visibilitychange', this.onVisibility);
  }
}
