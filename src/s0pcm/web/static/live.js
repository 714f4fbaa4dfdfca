// Live: per meter the power or flow now, today so far against yesterday by this time, the
// reading; above them what today, this month and this year cost. Updated by /api/live.
import { h, t, api, qs, listen, field, qty, rate, num, money, date, clock, state, tint, KINDS, range, shift, bucketLabel } from './lib.js';
import { bars, lines } from './chart.js';

const POWER = new Set(['electricity', 'heat']);

export async function mount(main) {
  const [meters, health] = await Promise.all([api('meters'), api('health').catch(() => null)]);
  const shown = meters.filter((m) => m.enabled !== false);
  const down = new Set();
  // Trouble is said at the top, in words: a module unplugged, no records (the logger is not
  // running, or cannot read), not only as "unavailable" numbers.
  const banners = h('div', { class: 'banners', 'aria-live': 'polite' });
  const setHealth = (doc) => {
    // Without the logger in the server's process (s0pcm serve) no record comes by: say so.
    if (doc?.live === false) status.textContent = t('stored');
    down.clear();
    const mods = doc?.modules || [];
    const say = [];
    for (const m of mods) {
      if (!m.connected && doc.live !== false) {
        down.add(m.name);
        say.push(h('p', { class: 'note bad', role: 'alert', 'data-banner': 'unplugged', 'data-module': m.name },
          t('unplugged', { m: m.name, p: m.port || '', t: m.since ? clock(m.since) : '?' })));
      }
    }
    const last = Math.max(...mods.map((m) => m.last_record_at ?? 0));
    const quiet = doc && mods.length && (!last || doc.at - last > 120);
    if (quiet && (doc.live === false || !say.length)) {
      say.push(h('p', { class: 'note bad', role: 'alert', 'data-banner': 'nologger' },
        last ? t('norecords', { t: clock(last) }) : t('norecordsever')));
    }
    banners.replaceChildren(...say);
  };
  const status = h('p', { class: 'muted status', 'data-live-status': '' });
  setHealth(health);
  const summary = h('div', { class: 'grid summary' });
  const cards = new Map();
  for (const m of shown) {
    const els = {
      rate: h('p', { class: 'rate', 'data-rate': '' }),
      today: h('dd', { 'data-today': '' }),
      yday: h('dd', { 'data-yday': '' }),
      reading: h('dd', { 'data-reading': '' }),
    };
    const made = m.direction === 'production';
    const what = [m.name === t(m.kind) ? '' : t(m.kind), made ? t('production').toLowerCase() : ''].filter(Boolean).join(', ');
    const card = h('article', { class: `card meter k-${tint(m)}`, 'data-meter': m.key, 'data-direction': m.direction || 'consumption' },
      h('h2', null, m.name, h('span', { class: 'muted sub' }, `${what ? `${what} · ` : ''}${m.module} M${m.register}`)),
      els.rate,
      h('dl', null,
        h('div', null, h('dt', null, t('today')), els.today),
        h('div', null, h('dt', null, t('yesterday')), els.yday),
        h('div', null, h('dt', null, t('reading')), els.reading)));
    cards.set(m.key, { m, card, els });
  }

  function paint(c) {
    const { m, els } = c;
    const off = down.has(m.module);
    const r = off ? null : m.rate;
    // A module that is there but a meter with no pulse for a while is quiet, not broken.
    const quiet = !off && r == null && m.since != null;
    els.rate.textContent = quiet ? t(m.direction === 'production' ? 'nosunsince' : POWER.has(m.kind) ? 'nopowersince' : 'quietsince', { t: clock(m.last_pulse_at ?? Math.max(m.since, Date.now() / 1000 - 2 * 86400)) }) : rate(r, m.rate_unit);
    els.rate.dataset.rate = r ?? '';
    els.rate.dataset.quiet = String(quiet);
    els.rate.classList.toggle('unavail', r == null);
    const dec = m.unit === 'L' ? 0 : Math.min(3, Math.max(0, Math.ceil(Math.log10(m.pulses_per_unit || 1))));
    els.today.textContent = qty(m.today, m.unit, dec);
    els.reading.textContent = m.reading == null ? '–' : `${num(m.reading, dec)} ${m.unit}`;
    els.reading.dataset.reading = m.reading ?? '';
    const y = m.yesterday_same_time;
    const d = y > 0 && m.today != null ? Math.round((m.today / y - 1) * 100) : null;
    els.yday.dataset.yesterday = y ?? '';
    els.yday.replaceChildren(y == null ? t('noyesterday') : qty(y, m.unit, dec), d == null ? '' : h('span', { class: `delta ${d > 0 ? 'up' : 'down'}` }, ` ${d > 0 ? '▲' : '▼'} ${num(Math.abs(d))}%`));
  }
  const paintAll = () => cards.forEach(paint);
  paintAll();

  async function loadSummary() {
    // The last second asked for by day, month and year: the server answers with the whole
    // bucket it falls in, today, this month and this year as the logger counts them.
    const end = Date.now() / 1000;
    const spans = [['today', 'day'], ['month', 'month'], ['year', 'year']];
    const docs = await Promise.all(spans.map(([, res]) =>
      api(`costs?${qs({ start: end - 1, end, resolution: res })}`).catch(() => null)));
    summary.replaceChildren(...spans.map(([key], i) => {
      const doc = docs[i];
      state.currency = doc?.currency || state.currency;
      const b = doc?.buckets?.[0];
      const kinds = KINDS.filter((k) => b?.by_kind?.[k]);
      return h('article', { class: 'card sum', 'data-summary': key },
        h('h2', null, t(key)),
        h('p', { class: 'big' }, b?.total == null ? '–' : money(b.total, doc.currency)),
        h('ul', null, kinds.map((k) => {
          // With production: what was used and its cost, then what was made and what it earned
          // (the two add up to the kind's cost).
          const v = b.by_kind[k];
          const earned = v.compensation ?? 0;
          const used = v.cost == null ? null : v.cost + earned;
          return [
            v.value == null && v.produced != null && !used ? '' : h('li', { class: `k-${k}` }, h('span', null, t(k)), h('span', null, qty(v.value, v.unit)), h('span', null, money(used, doc.currency))),
            v.produced == null ? '' : h('li', { class: 'k-production', 'data-produced': v.produced },
              h('span', null, `${t(k)}, ${t('produced').toLowerCase()}`), h('span', null, qty(v.produced, v.unit)), h('span', null, v.compensation == null ? '–' : money(v.compensation ? -v.compensation : 0, doc.currency))),
          ];
        })));
    }));
  }

  // Today per hour against yesterday, for one meter at a time.
  const pick = h('select', { onchange: () => drawToday() }, shown.map((m) => h('option', { value: m.key }, m.name)));
  const box = h('div', { class: 'chart', role: 'img', 'aria-label': t('todayhour') });
  let undraw = null;
  async function drawToday() {
    const m = cards.get(pick.value)?.m;
    if (!m) return;
    const d = new Date();
    const ranges = await Promise.all([range('hour', d), range('hour', shift('hour', d, -1))]);
    const [a, b] = await Promise.all(ranges.map((r) => api(`meters/${encodeURIComponent(m.key)}/consumption?${qs(r)}`)));
    const now = Date.now() / 1000;
    const fq = (v) => qty(v, m.unit);
    undraw?.();
    undraw = await bars(box, {
      xLabel: t('time'),
      labels: a.buckets.map((x) => bucketLabel('hour', x.start)[0]),
      titles: a.buckets.map((x) => bucketLabel('hour', x.start)[2]),
      series: [
        { label: t('today'), values: a.buckets.map((x) => (x.start > now ? null : x.value)), color: `--${tint(m)}`, fmt: fq },
        { label: t('yday'), values: a.buckets.map((_, i) => b.buckets[i]?.value ?? null), color: '--prev', fmt: fq },
      ],
    });
  }
  // Power and flow of the last hours, at the logger's resolution, kept up by the stream.
  const powerBox = h('div', { class: 'chart', 'data-power': '', role: 'img', 'aria-label': t('powerchart') });
  let power = null;
  const traces = [];
  async function drawPower() {
    const doc = await api(`power?${qs({ hours: 3 })}`);
    traces.length = 0;
    for (const m of doc.meters) traces.push({ key: m.key, unit: m.rate_unit, kind: tint(m), name: m.name, pts: m.points.map(([x, v]) => [x, v]) });
    const xs = [...new Set(traces.flatMap((s) => s.pts.map((p) => p[0])))].sort((a, b) => a - b);
    const vals = traces.map((s) => { const by = new Map(s.pts); return xs.map((x) => (by.has(x) ? by.get(x) : null)); });
    power?.destroy();
    power = await lines(powerBox, {
      xLabel: t('time'), xs,
      series: traces.map((s, i) => ({ label: s.name, scale: s.unit, color: `--${s.kind}`, values: vals[i], fmt: (v) => rate(v, s.unit) })),
    });
    powerBox.dataset.points = String(xs.length);
  }
  function addPower(at, meters) {
    if (!power) return;
    for (const s of traces) {
      const v = meters[s.key];
      if (v) s.pts.push([at, v.rate ?? null]);
      while (s.pts.length && s.pts[0][0] < at - 3 * 3600) s.pts.shift();
    }
    const xs = [...new Set(traces.flatMap((s) => s.pts.map((p) => p[0])))].sort((a, b) => a - b);
    power.update(xs, traces.map((s) => { const by = new Map(s.pts); return xs.map((x) => (by.has(x) ? by.get(x) : null)); }));
    powerBox.dataset.points = String(xs.length);
  }
  main.replaceChildren(h('h1', { class: 'sr-only' }, t('live')), banners, status,
    shown.length ? h('div', { class: 'grid meters' }, [...cards.values()].map((c) => c.card)) : h('p', { class: 'card' }, t('nometers')),
    summary,
    shown.length ? h('section', { class: 'card' }, h('h2', null, t('powerchart')), powerBox) : '',
    shown.length ? h('section', { class: 'card' }, h('div', { class: 'head' }, h('h2', null, t('todayhour')), field(t('meter'), pick)), box) : '');
  loadSummary();
  if (shown.length) { drawToday().catch(() => null); drawPower().catch(() => null); }

  let updates = 0;
  const stop = listen((type, d) => {
    if (type === 'update' && d) {
      for (const [key, v] of Object.entries(d.meters || {})) {
        const c = cards.get(key);
        if (!c) continue;
        Object.assign(c.m, v);
        paint(c);
      }
      down.delete(d.module);
      addPower(d.at, d.meters || {});
      status.dataset.updates = ++updates;
      status.textContent = t('updated', { t: date(d.at, { timeStyle: 'medium' }) });
    } else if (type === 'health') {
      setHealth(d);
      paintAll();
    } else if (type === 'error') {
      status.textContent = t('reconnecting');
    }
  });
  // Yesterday-by-now moves with the clock, and costs with consumption: refresh them each minute.
  const timer = setInterval(async () => {
    if (document.hidden) return;
    for (const m of await api('meters').catch(() => [])) {
      const c = cards.get(m.key);
      if (c) { Object.assign(c.m, m); paint(c); }
    }
    loadSummary();
    drawToday().catch(() => null);
  }, 60000);
  return () => { stop(); clearInterval(timer); undraw?.(); power?.destroy(); };
}
