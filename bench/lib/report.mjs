/**
 * Metric definitions and the generated docs/benchmarks.md and docs/benchmarks.svg (a
 * hand-written SVG bar chart of the duet/ws ratios, the floor/ws ratios marked on it, no
 * dependency). Results without a floor (--servers=duet,ws, older JSON) render without it.
 */

const int = (x) => Math.round(x).toLocaleString('en-US');
const UNIT = { echo: 'echo', chat: 'delivery', handshake: 'handshake', idle: 'connection' };

export const METRICS = {
  rate: {
    short: 'rate',
    label: 'per second',
    better: 'higher',
    fmt: int,
    unitLabel: (u) => `${{ delivery: 'deliveries', echo: 'echoes' }[u] ?? `${u}s`}/s`,
  },
  mbps: { short: 'MB/s', label: 'MB/s echoed', better: 'higher', fmt: (x) => x.toFixed(1) },
  p50: { short: 'p50', label: 'latency p50 us', better: 'lower', fmt: int },
  p99: { short: 'p99', label: 'latency p99 us', better: 'lower', fmt: int },
  cpu: {
    short: 'cpu/msg',
    label: 'server CPU us/msg',
    better: 'lower',
    fmt: (x) => x.toFixed(2),
    unitLabel: (u) => `server CPU us/${u}`,
  },
  util: { short: 'cpu', label: 'server CPU % of a core', better: 'lower', fmt: (x) => `${(x * 100).toFixed(0)}%` },
  rss: { short: 'rss MB', label: 'server RSS MB', better: 'lower', fmt: (x) => (x / 1e6).toFixed(1) },
  rssPerConn: {
    short: 'KiB/conn',
    label: 'server RSS KiB/connection',
    better: 'lower',
    fmt: (x) => (x / 1024).toFixed(2),
  },
  heapPerConn: {
    short: 'heap KiB/conn',
    label: 'server JS heap KiB/connection',
    better: 'lower',
    fmt: (x) => (x / 1024).toFixed(2),
  },
};
for (const m of Object.values(METRICS))
  m.fmt = ((f) => (x) => (typeof x === 'number' && Number.isFinite(x) ? f(x) : 'n/a'))(m.fmt);

/** The label of metric `k` in a scenario of kind `kind` (e.g. "server CPU us/echo"). */
export function metricLabel(k, kind) {
  const m = METRICS[k];
  return m.unitLabel ? m.unitLabel(UNIT[kind] ?? 'msg') : m.label;
}

export function targetText(t) {
  if (!t) return '';
  const n = (x) => (Number.isInteger(x) ? x.toFixed(1) : String(x));
  return t.max !== undefined ? `<= ${n(t.max)}x` : `>= ${n(t.min)}x`;
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Whether the reference server (bench/servers/floor.mjs) ran in any scenario of `out`. */
const hasFloor = (out) => out.scenarios.some((s) => !s.pending && s.medians?.floor !== undefined);
const ratioText = (r) => (r === undefined ? '-' : r === null ? '**INVALID**' : `${r.toFixed(2)}x`);
/** The ratio of `kind` to ws in a table: n/a where both runs are valid but the metric has no number (e.g. no heap answer). */
const ratioCell = (s, kind, r) => (r === null && s.medians[kind] && s.medians.ws ? 'n/a' : ratioText(r));

/** A diamond centred on (cx, cy): the floor/ws mark of the chart. */
const diamond = (cx, cy, w = 5, h = 7) =>
  `<polygon points="${(cx - w).toFixed(1)},${cy} ${cx.toFixed(1)},${cy - h} ${(cx + w).toFixed(1)},${cy} ${cx.toFixed(1)},${cy + h}" fill="#333" stroke="#fff" stroke-width="1.2"/>`;

export function renderSvg(out) {
  const rows = out.scenarios.map((s) => {
    const k = s.target?.metric;
    const ratio = s.pending ? undefined : s.ratios[k];
    const floor = s.pending ? undefined : s.floorRatios?.[k];
    return { s, k, ratio, floor };
  });
  const withFloor = hasFloor(out);
  const W = 760;
  const left = 300;
  const right = 70;
  const rowH = 34;
  const top = withFloor ? 76 : 58;
  const H = top + rows.length * rowH + 46;
  const maxRatio =
    Math.max(
      2,
      ...rows.map((r) => (typeof r.ratio === 'number' ? r.ratio : 0)),
      ...rows.map((r) => (typeof r.floor === 'number' ? r.floor : 0)),
      ...rows.map((r) => r.s.target?.min ?? r.s.target?.max ?? 0),
    ) * 1.05;
  const x = (v) => left + ((W - left - right) * v) / maxRatio;
  const parts = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="13">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">duet / ws, headline metric per scenario (medians; ${esc(out.machine.cores)} cores, node ${esc(out.machine.node)})</text>`,
  );
  parts.push(
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">bar = ratio; dashed line = target; green = target met, red = not met; the label says which way is better</text>`,
  );
  if (withFloor) {
    const legend =
      'floor/ws: a minimal server on node:net (a reference, not a competitor); a target it misses is out of reach';
    const x0 = (W - (legend.length + 2) * 6.5) / 2 + 7; // about 6.5 px a character at 13 px
    parts.push(diamond(x0 - 9, 53, 5, 6));
    parts.push(`<text x="${x0.toFixed(1)}" y="58" fill="#555">= ${esc(legend)}</text>`);
  }
  // Grid lines at every 0.5.
  for (let v = 0; v <= maxRatio + 1e-9; v += 0.5) {
    parts.push(
      `<line x1="${x(v).toFixed(1)}" y1="${top - 6}" x2="${x(v).toFixed(1)}" y2="${top + rows.length * rowH}" stroke="${v === 1 ? '#333' : '#e3e3e3'}" stroke-width="${v === 1 ? 1.5 : 1}"/>`,
    );
    parts.push(
      `<text x="${x(v).toFixed(1)}" y="${top + rows.length * rowH + 16}" text-anchor="middle" fill="#555">${v.toFixed(1)}x</text>`,
    );
  }
  parts.push(
    `<text x="${x(1).toFixed(1)}" y="${top + rows.length * rowH + 34}" text-anchor="middle" fill="#333">ws = 1.0x</text>`,
  );
  rows.forEach(({ s, k, ratio, floor }, i) => {
    const y = top + i * rowH;
    const better = k ? METRICS[k].better : '';
    const kind = s.params?.kind;
    const label = `${s.id}: ${k ? metricLabel(k, kind) : ''}`;
    const floorText =
      typeof floor === 'number'
        ? `, floor ${floor.toFixed(2)}x`
        : floor === null
          ? ', floor INVALID'
          : s.notMeasured?.floor
            ? ', no floor'
            : '';
    parts.push(`<text x="${left - 8}" y="${y + 14}" text-anchor="end">${esc(label)}</text>`);
    parts.push(
      `<text x="${left - 8}" y="${y + 28}" text-anchor="end" fill="#777" font-size="11">${esc(better ? `${better} is better, target ${targetText(s.target)}${floorText}` : '')}</text>`,
    );
    if (s.pending) {
      parts.push(
        `<text x="${left + 6}" y="${y + 20}" fill="#777" font-style="italic">pending: ${esc(s.pending)}</text>`,
      );
    } else if (typeof ratio !== 'number') {
      parts.push(`<text x="${left + 6}" y="${y + 20}" fill="#b00020" font-weight="600">INVALID</text>`);
    } else {
      const color = s.verdict === 'met' ? '#2e7d32' : '#c62828';
      parts.push(
        `<rect x="${left}" y="${y + 5}" width="${Math.max(1, x(ratio) - left).toFixed(1)}" height="${rowH - 12}" fill="${color}" fill-opacity="0.85"/>`,
      );
      // The value goes right of the bar and of the target mark, whichever ends later.
      const t = s.target?.max ?? s.target?.min ?? 0;
      const at = Math.max(x(ratio), Math.abs(x(t) - x(ratio)) < 40 ? x(t) : 0) + 5;
      parts.push(`<text x="${at.toFixed(1)}" y="${y + 21}" fill="#222">${ratio.toFixed(2)}x</text>`);
    }
    const t = s.target?.max ?? s.target?.min;
    if (t !== undefined)
      parts.push(
        `<line x1="${x(t).toFixed(1)}" y1="${y + 2}" x2="${x(t).toFixed(1)}" y2="${y + rowH - 4}" stroke="#000" stroke-width="2" stroke-dasharray="3,2"/>`,
      );
    // On the bar's top edge, clear of the value written right of the bar.
    if (!s.pending && typeof floor === 'number') parts.push(diamond(x(floor), y + 5, 5, 6));
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export function renderMarkdown(out) {
  const L = [];
  const m = out.machine;
  L.push('# Benchmarks: duet and ws side by side');
  L.push('');
  L.push('<!-- Generated by `npm run bench` (bench/run.mjs); edit the generator, not this file. -->');
  L.push('');
  L.push(
    `Generated ${out.generated.slice(0, 10)} by \`${out.command}\` in ${Math.round(out.elapsedSeconds / 6) / 10} minutes. ` +
      `duet ${out.versions.duet} against ws ${out.versions.ws} with bufferutil and utf-8-validate. Raw results: [benchmarks.json](benchmarks.json).`,
  );
  L.push('');
  L.push(
    'Run it on your own machine: `npm run bench` (about 8 minutes, then 10 for the scale-out scenario) or `npm run bench -- --quick` (about 2.5 minutes).',
  );
  L.push('');
  L.push('## Machine');
  L.push('');
  L.push(`- CPU: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB`);
  L.push(`- Node ${m.node}, ${m.kernel} (${m.platform})`);
  L.push(`- Pinning: ${out.pinning}`);
  for (const n of out.notes) L.push(`- Note: ${n}`);
  L.push('');
  L.push('## Method');
  L.push('');
  L.push(
    '- Each server is a plain application in its own process ([bench/servers/duet.mjs](../bench/servers/duet.mjs), ' +
      '[bench/servers/ws.mjs](../bench/servers/ws.mjs)) serving `/echo` (every message back, same type) and `/chat` ' +
      '(every message to every `/chat` client, the sender included: duet with `wss.publish`, ws with the usual `clients.forEach` loop). ' +
      'A fresh server process is started for every measurement; both run with their default options.',
  );
  L.push(
    '- Load comes from separate processes ([bench/lib/loader.mjs](../bench/lib/loader.mjs)): raw TCP clients with a hand-written ' +
      'handshake and a minimal frame codec ([bench/lib/wire.mjs](../bench/lib/wire.mjs)), masked client frames, so the load generator costs little.',
  );
  const withFloor = hasFloor(out);
  if (withFloor) {
    const skipped = out.scenarios.filter((s) => s.notMeasured?.floor);
    L.push(
      '- The floor ([bench/servers/floor.mjs](../bench/servers/floor.mjs)) is a reference, not a competitor: a minimal hand-written WebSocket server ' +
        'on `node:net` serving the same `/echo` and `/chat`, with only what the load generators need (find the key, answer the upgrade, unmask, write back). ' +
        'It has no UTF-8 checks, no limits, no validation, no timeouts and no events for an application, so it would fail many RFC 6455 rules; ' +
        "what it measures is the cost of Node's `net` layer on this machine, the floor the targets were set from. " +
        'Where floor/ws is itself above a lower-is-better target (or below a higher-is-better one), that target is out of reach on this machine ' +
        'with this harness, whatever duet does.' +
        (skipped.length
          ? ` Not measured with the floor: ${skipped.map((s) => `\`${s.id}\` (${s.notMeasured.floor})`).join(', ')}.`
          : ''),
    );
  }
  L.push(
    `- ${out.options.rounds} round(s); within a round the servers alternate which goes first. Per measurement: ${out.options.warmupMs} ms warm-up, ` +
      `then a ${out.options.durationMs} ms window. The table shows the median of the rounds for each server and the ratio duet/ws of those medians` +
      (withFloor ? ' (and floor/ws, for reference; the verdict is duet/ws against the target only).' : '.'),
  );
  L.push(
    "- Server CPU is user + system time of all the server's threads from `/proc/PID/stat` over the window (10 ms ticks), divided by the " +
      "messages completed in the window. RSS is the server's resident set at the end of the window. Loopback receive processing " +
      "the server's writes trigger runs as softirq and is not charged to the process (on a real network it is the clients' machines' work).",
  );
  L.push(
    '- Latency is measured by the load generator: send to complete echo; for chat, send to delivery at each receiver (a monotonic clock shared by processes); ' +
      'for handshakes, TCP connect to the checked 101 response.',
  );
  L.push(
    '- Every scenario verifies what it receives: echoes are compared byte for byte with what was sent (distinct payloads in rotation, ' +
      "so a lost, duplicated or reordered echo mismatches) and every echo must arrive; every chat receiver checks that each sender's messages " +
      'arrive exactly once, in order, complete and intact; every handshake checks Sec-WebSocket-Accept and a clean close (1000); idle connections ' +
      'each echo one message at the end. A run that fails any check is reported as INVALID, never as a number.',
  );
  L.push('');
  L.push('## Scenarios');
  L.push('');
  for (const s of out.scenarios) L.push(`- \`${s.id}\`: ${s.title}${s.pending ? ` (pending: ${s.pending})` : ''}`);
  L.push('');
  L.push('## Results');
  L.push('');
  L.push(withFloor ? '![duet/ws ratios, floor/ws marked](benchmarks.svg)' : '![duet/ws ratios](benchmarks.svg)');
  L.push('');
  L.push(
    withFloor
      ? '| scenario | metric | duet | ws | duet/ws | floor | floor/ws | target | |'
      : '| scenario | metric | duet | ws | duet/ws | target | |',
  );
  L.push(
    withFloor
      ? '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |'
      : '| --- | --- | ---: | ---: | ---: | ---: | --- |',
  );
  for (const s of out.scenarios) {
    if (s.pending) {
      L.push(`| ${s.id} | | | | |${withFloor ? ' | |' : ''} ${targetText(s.target)} | pending: ${s.pending} |`);
      continue;
    }
    s.metrics.forEach((k, i) => {
      const mt = METRICS[k];
      const cell = (kind) =>
        s.medians[kind] === undefined ? '-' : s.medians[kind] === null ? '**INVALID**' : mt.fmt(s.medians[kind][k]);
      const isT = s.target?.metric === k;
      const ratio = ratioCell(s, 'duet', s.ratios[k]);
      const floor = withFloor ? ` ${cell('floor')} | ${ratioCell(s, 'floor', s.floorRatios?.[k])} |` : '';
      L.push(
        `| ${i === 0 ? s.id : ''} | ${metricLabel(k, s.params.kind)} (${mt.better} is better) | ${cell('duet')} | ${cell('ws')} | ${isT ? `**${ratio}**` : ratio} |${floor} ${isT ? targetText(s.target) : ''} | ${isT ? (s.verdict ?? '') : ''} |`,
      );
    });
  }
  L.push('');
  const missed = out.scenarios.filter((s) => s.verdict === 'NOT met');
  const invalid = out.scenarios.filter((s) => s.verdict === 'INVALID');
  L.push(
    `Targets met: ${out.scenarios.filter((s) => s.verdict === 'met').length} of ${out.scenarios.filter((s) => s.verdict !== null && !s.pending).length}` +
      (missed.length ? `; not met: ${missed.map((s) => s.id).join(', ')}` : '') +
      (invalid.length ? `; INVALID: ${invalid.map((s) => s.id).join(', ')}` : '') +
      '.',
  );
  L.push('');
  if (withFloor && missed.length > 0) {
    const reach = missed.map((s) => {
      const r = s.floorRatios?.[s.target.metric];
      if (s.notMeasured?.floor) return `\`${s.id}\`: no floor (${s.notMeasured.floor})`;
      if (r === undefined) return `\`${s.id}\`: no floor`;
      if (r === null) return `\`${s.id}\`: floor INVALID`;
      const load = Math.max(...(s.runs.floor ?? []).map((x) => x.loadUtil).filter((x) => typeof x === 'number'));
      return (
        `\`${s.id}\`: floor/ws ${r.toFixed(2)}x, ` +
        (s.floorReached
          ? 'so the floor reaches it'
          : 'so the floor misses it too: out of reach on this machine with this harness') +
        (!s.floorReached && s.params.kind !== 'chat' && load >= 0.85
          ? ` (the load generators used up to ${(load * 100).toFixed(0)}% of their core against the floor)`
          : '')
      );
    });
    L.push(`The missed targets against the floor: ${reach.join('; ')}.`);
    L.push('');
  }
  const flags = readingNotes(out);
  if (flags.length > 0) {
    L.push('## Reading the numbers');
    L.push('');
    for (const f of flags) L.push(`- ${f}`);
    L.push('');
  }
  if (out.scaleout) L.push(...renderScaleout(out.scaleout));
  if (out.profileNotes) {
    L.push('## Where the time goes (profile notes)');
    L.push('');
    L.push(out.profileNotes.trim());
    L.push('');
  }
  L.push('## Every run');
  L.push('');
  L.push(
    `The headline metric of each run, in order (servers alternate which goes first), the per-round ratio duet/ws${withFloor ? ' (and floor/ws)' : ''}, and how busy the load generators were (their share of the load core).`,
  );
  L.push('');
  for (const s of out.scenarios) {
    if (s.pending) continue;
    const k = s.target.metric;
    const runs = Object.entries(s.runs)
      .map(
        ([kind, list]) =>
          `${kind} ` +
          list
            .map((r) =>
              r.invalid
                ? `INVALID (${r.invalid})`
                : METRICS[k].fmt(r[k]) + (r.loadUtil != null ? ` [load ${(r.loadUtil * 100).toFixed(0)}%]` : ''),
            )
            .join(', '),
      )
      .join('; ');
    const rr = s.roundRatios?.[k];
    const fr = s.floorRoundRatios?.[k];
    const list = (xs) => xs.map((x) => `${x.toFixed(2)}x`).join(', ');
    L.push(
      `- \`${s.id}\` (${metricLabel(k, s.params.kind)}): ${runs}` +
        (rr ? `; per round ${list(rr)}` : '') +
        (fr ? `; floor/ws per round ${list(fr)}` : '') +
        (s.notMeasured?.floor ? `; floor not measured (${s.notMeasured.floor})` : ''),
    );
  }
  L.push('');
  return L.join('\n');
}

/** Caveats the numbers themselves show: a saturated load generator or server, spread between rounds. */
export function readingNotes(out) {
  const notes = [];
  for (const s of out.scenarios) {
    if (s.pending) continue;
    // The load caveat is about duet against ws; the floor's own is below.
    const loadOf = (list) =>
      list
        .filter((r) => !r.invalid)
        .map((r) => r.loadUtil)
        .filter((x) => typeof x === 'number');
    const load = loadOf(
      Object.entries(s.runs)
        .filter(([kind]) => kind !== 'floor')
        .flatMap(([, list]) => list),
    );
    const floorLoad = loadOf(s.runs.floor ?? []);
    if (load.length > 0 && Math.max(...load) >= 0.85 && s.params.kind === 'chat') {
      notes.push(
        `\`${s.id}\`: the receivers used up to ${(Math.max(...load) * 100).toFixed(0)}% of the load core (a server that writes each message ` +
          "separately makes them read each separately), so latency there includes the receivers' own queueing.",
      );
    } else if (load.length > 0 && Math.max(...load) >= 0.85) {
      notes.push(
        `\`${s.id}\`: the load generators used up to ${(Math.max(...load) * 100).toFixed(0)}% of their core, so the rate is bounded by the ` +
          'load side as much as by the server; server CPU per message is the fairer comparison there.',
      );
    }
    if (s.params.kind !== 'chat' && floorLoad.length > 0 && Math.max(...floorLoad) >= 0.85) {
      notes.push(
        `\`${s.id}\`: against the floor the load generators used up to ${(Math.max(...floorLoad) * 100).toFixed(0)}% of their core, so the floor's rate ` +
          'is capped by the load side: its rate and latency ratios understate the floor there.',
      );
    }
    for (const [kind, list] of Object.entries(s.runs)) {
      const busy = list.filter((r) => !r.invalid && typeof r.util === 'number' && r.util >= 0.85);
      if (s.params.kind === 'chat' && busy.length > 0) {
        notes.push(
          `\`${s.id}\`: ${kind} used ${busy.map((r) => `${(r.util * 100).toFixed(0)}%`).join(', ')} of its core at this fixed rate: it is near saturation, ` +
            'so its latency grows and its CPU per message is capped by the core (the ratio understates the difference).',
        );
      }
    }
    const rr = s.roundRatios?.[s.target.metric];
    if (rr && rr.length > 1) {
      const lo = Math.min(...rr);
      const hi = Math.max(...rr);
      if (hi / lo > 1.25)
        notes.push(
          `\`${s.id}\`: the per-round ratios spread from ${lo.toFixed(2)}x to ${hi.toFixed(2)}x; treat the median as approximate (more rounds: \`--rounds=N\`).`,
        );
    }
  }
  const idle = out.scenarios.find((s) => s.id === 'idle-memory' && !s.pending);
  if (idle && idle.metrics.includes('heapPerConn')) {
    notes.push(
      "`idle-memory`: RSS per connection (the target) is read from `/proc` a few seconds after the connections opened; it includes V8's " +
        "young generation, grown during the connection burst, and Node's native per-socket memory, about the same in every server, so its ratio is closer to 1 " +
        'than the live per-connection state is. The JS heap per connection is `heapUsed` measured inside the server after a forced GC (`--expose-gc`), ' +
        "with the connections open and again after they all closed: the server's own per-connection objects.",
    );
  } else if (idle) {
    notes.push(
      "`idle-memory`: RSS is measured a few seconds after the connections opened. It includes V8's young generation, which grows " +
        "during the connection burst by about the same amount in every server and is released only later by V8's memory reducer, so the ratio is closer to 1 than the live per-connection state is.",
    );
  }
  return notes;
}

/**
 * The scale-out scenario's section (bench/scaleout.mjs via runScaleout in bench/run.mjs): server
 * CPU per delivery by load for every variant, then the ratios and the issue's targets.
 */
export function renderScaleout(so) {
  const L = ['## Scale-out through Redis (against Socket.IO)', ''];
  if (so.skipped) {
    L.push(`Not measured: ${so.skipped}.`, '');
    return L;
  }
  const us = (x) => (typeof x === 'number' && Number.isFinite(x) ? `${x.toFixed(2)} us` : '-');
  L.push(
    `Fan-out of one topic to ${so.options.conns} connections, ${so.options.senders} senders, at ${so.loads.length} load${so.loads.length === 1 ? '' : 's'}, from ` +
      '[bench/scaleout.mjs](../bench/scaleout.mjs) (its own output has every window; method and reading in ' +
      '[scaling.md](scaling.md#cost-per-delivery)). Server CPU per delivery, medians of ' +
      `${so.options.rounds} round(s); in brackets the share of the offered load delivered, when below 98 %. ` +
      `Socket.IO ${so.versions['socket.io']} with @socket.io/redis-adapter ${so.versions['@socket.io/redis-adapter']}, Redis ${so.versions.redis}.`,
    '',
  );
  const ids = Object.keys(so.titles);
  L.push(`| variant | ${so.loads.map((l) => `${l.messagesPerSecond} msg/s`).join(' | ')} |`);
  L.push(`| --- | ${so.loads.map(() => '---:').join(' | ')} |`);
  for (const id of ids) {
    const cells = so.loads.map((l) => {
      const m = l.medians[id];
      if (m === null || m === undefined) return 'INVALID';
      return `${us(m.serverCpu)}${m.keptUp < 0.98 ? ` (${Math.round(m.keptUp * 100)} %)` : ''}`;
    });
    L.push(`| ${so.titles[id]} | ${cells.join(' | ')} |`);
  }
  const pairs = [...so.loads[0].targets, ...so.loads[0].bounds];
  for (const p of pairs) {
    const cells = so.loads.map((l) => {
      const t = [...l.targets, ...l.bounds].find((x) => x.a === p.a && x.b === p.b);
      if (t === undefined || typeof t.ratio !== 'number') return 'INVALID';
      if (t.max === undefined) return `${t.ratio.toFixed(2)}x`;
      return `${t.ratio.toFixed(2)}x ${t.behind?.length > 0 ? '(no verdict)' : t.ratio <= t.max ? '(met)' : '(NOT met)'}`;
    });
    const what = p.max === undefined ? ' (the floor: the least with one write per delivery)' : ` (target <= ${p.max}x)`;
    L.push(`| **${p.a} / ${p.b}**${what} | ${cells.join(' | ')} |`);
  }
  L.push('');
  if (so.loads.some((l) => l.targets.some((t) => t.behind?.length > 0)))
    L.push(
      'No verdict: one of the two delivered less than 98 % of the offered load (it fell behind), so they did not do the same work.',
      '',
    );
  return L;
}
