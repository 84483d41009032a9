/** The live panel: the server's timed push on topic `ticker`, one tick a second. */
import { computed, onScopeDispose, ref, shallowRef } from 'vue';
import type { Duet } from './duet-types';
import { trackRecovery } from './recovery';

export interface TickPoint {
  seq: number;
  value: number;
  time: string;
}

/** How many ticks the chart shows. */
export const TICKER_POINTS = 60;

function readTick(data: unknown): { value: number; time: string } | null {
  if (typeof data !== 'object' || data === null) return null;
  const o = data as Record<string, unknown>;
  if (typeof o.value !== 'number' || !Number.isFinite(o.value)) return null;
  return { value: o.value, time: typeof o.time === 'string' ? o.time : new Date().toISOString() };
}

export function useTicker(duet: Duet) {
  const points = shallowRef<TickPoint[]>([]);
  const note = ref<{ text: string; tone: 'good' | 'warn'; testid: string } | null>(null);
  let noteTimer: ReturnType<typeof setTimeout> | undefined;
  onScopeDispose(() => clearTimeout(noteTimer));

  const recovery = trackRecovery(duet, 'ticker', {
    recovered(missed) {
      note.value = {
        text: `Reconnected: recovered ${missed} missed tick${missed === 1 ? '' : 's'}.`,
        tone: 'good',
        testid: 'ticker-recovered',
      };
      // Up long enough to be read, then back to the quiet state.
      const shown = note.value;
      clearTimeout(noteTimer);
      noteTimer = setTimeout(() => {
        if (note.value === shown) note.value = null;
      }, 8000);
    },
    lost(newEpoch) {
      // The old series belongs to another epoch: start the chart over rather than join them.
      points.value = [];
      note.value = {
        text: newEpoch
          ? 'New epoch (server restarted): the ticks you missed are gone; the chart starts over.'
          : 'Too many ticks missed to recover; the chart starts over.',
        tone: 'warn',
        testid: 'ticker-reset',
      };
    },
  });

  duet.subscribe('ticker', (data, meta) => {
    recovery.seen(meta.seq, meta.epoch);
    const tick = readTick(data);
    if (tick === null) return;
    const next = [...points.value, { seq: meta.seq, value: tick.value, time: tick.time }];
    points.value = next.length > TICKER_POINTS ? next.slice(next.length - TICKER_POINTS) : next;
  });

  const current = computed(() => points.value.at(-1) ?? null);
  const change = computed(() => {
    const p = points.value;
    return p.length < 2 ? 0 : Math.round((p[p.length - 1].value - p[p.length - 2].value) * 100) / 100;
  });
  return { points, current, change, note };
}
