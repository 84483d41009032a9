/**
 * Settings a visitor (or the end-to-end test) can put in the page's query string, e.g.
 * `/?nick=ada&minDelay=200&maxDelay=1000&heartbeat=2000`. Bad values fall back to the
 * defaults rather than breaking the page.
 */
import type { DuetClientOptions } from 'duet/client';

export interface DemoOptions {
  nick: string | null;
  client: DuetClientOptions;
}

function num(params: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const raw = params.get(name);
  if (raw === null || raw.trim() === '') return undefined;
  const value = Number(raw);
  return Number.isFinite(value) && value >= min && value <= max ? value : undefined;
}

export function readOptions(search: string): DemoOptions {
  const params = new URLSearchParams(search);
  const client: DuetClientOptions = {
    // Quicker than the library's defaults: a demo should show a reconnect within a second or two.
    minDelay: num(params, 'minDelay', 0, 60_000) ?? 250,
    maxDelay: num(params, 'maxDelay', 0, 300_000) ?? 5000,
    // Frequent pings so the latency shows up soon after the page opens.
    heartbeatInterval: num(params, 'heartbeat', 0, 300_000) ?? 3000,
    heartbeatTimeout: num(params, 'heartbeatTimeout', 100, 300_000) ?? 5000,
  };
  const nick = params.get('nick');
  return { nick: nick === null ? null : nick.slice(0, 24), client };
}

/** The page's own server, with ws: or wss: to match http: or https:. */
export function endpoint(path: string): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}
