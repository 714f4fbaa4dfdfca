// History: bars per hour (of a day), day (of a month), month (of a year) or year (ten years) for
// one meter or all meters of a kind, the previous period beside it, cost and readings in a table.
import { h, t, api, qs, field, id, qty, colDigits, num, money, sum, date, state, weekend, tint, KINDS, ymd, parseDay, period, shift, range, bucketLabel, periodTitle } from './lib.js';
import { bars } from './chart.js';

/** The period controls shared with Costs: resolution radios, previous / next / latest. */
export function toolbar(p, resolutions, go) {
  const name = id('r');
  const radios = h('fieldset', { class: 'seg' }, h('legend', { class: 'sr-only' }, t('bars')),
    resolutions.map((r) => h('label', null,
      h('input', { type: 'radio', name, value: r, checked: p.r === r, onchange: () => go({ r }) }),
      h('span', null, t(r === 'month' ? 'monthr' : r === 'year' ? 'yearr' : r)))));
  const d = parseDay(p.d);
  const title = h('h2', { class: 'ptitle', 'aria-live': 'polite' }, periodTitle(p.r, period(p.r, d)));
  const later = period(p.r, d)[1] > new Date();
  const nav = h('div', { class: 'pnav' },
    h('button', { type: 'button', 'aria-label': t('prev'), title: t('prev'), onclick: () => go({ d: ymd(shift(p.r, d, -1)) }) }, '‹'),
    title,
    h('button', { type: 'button', 'aria-label': t('next'), title: t('next'), disabled: later, onclick: () => go({ d: ymd(shift(p.r, d, 1)) }) }, '›'),
    h('button', { type: 'button', disabled: later, onclick: () => go({ d: ymd(new Date()) }) }, t('latest')));
  return { radios, nav };
}

/** Keeps the page's state in the hash (back and forward work) without re-mounting the page. */
export function keeper(page, p, load, out) {
  return (change) => {
    Object.assign(p, change);
    history.pushState(null, '', `#/${page}?${qs(p)}`);
    load().catch((e) => out.replaceChildren(h('p', { class: 'bad', role: 'alert' }, t('failed', { e: e.message }))));
  };
}

/** The local year of ``d`` by month: the readings per month a supplier asks for. */
function yearRange(d) {
  const [a, b] = period('month', d).map((x) => x / 1000);
  return { start: a + 43200, end: b - 43200, resolution: 'month' };
}

async function series(sel, r) {
  // "kind:electricity": the consumption meters of a kind; "net:electricity": their consumption
  // less what its production meters made, and its cost less what that earned.
  const [what, kind] = sel.split(':');
  if (kind) {
    const doc = await api(`costs?${qs(r)}`);
    state.currency = doc.currency || state.currency;
    const unit = doc.buckets.map((b) => b.by_kind?.[kind]?.unit).find(Boolean) || '';
    const net = what === 'net';
    return {
      unit, since: doc.since,
      buckets: doc.buckets.map((b) => {
        const c = b.by_kind?.[kind];
        const cost = net ? (c?.energy_cost == null && c?.compensation == null ? null : (c.energy_cost ?? 0) - (c.compensation ?? 0)) : c?.energy_cost ?? null;
        return { start: b.start, end: b.end, value: (net ? c?.net : c?.value) ?? null, cost };
      }),
    };
  }
  return api(`meters/${encodeURIComponent(sel)}/consumption?${qs(r)}`);
}

export async function mount(main, params, gone) {
  const [meters, tariffs] = await Promise.all([api('meters'), api('tariffs').catch(() => null)]);
  state.currency = tariffs?.currency || state.currency;
  const shown = meters.filter((m) => m.enabled !== false);
  const kinds = KINDS.filter((k) => shown.some((m) => m.kind === k));
  const netKinds = kinds.filter((k) => shown.some((m) => m.kind === k && m.direction === 'production'));
  const produces = (key) => shown.find((m) => m.key === key)?.direction === 'production';
  // The first days of a month are a bar or two: until the 7th the page opens on last month
  // (when there is data from then); "Latest" goes to this month.
  const today = new Date();
  const monthStart = new Date(today.getFullYear(), today.getMonth(), 1) / 1000;
  const early = today.getDate() < 7 && shown.some((m) => m.since != null && m.since < monthStart);
  const p = { m: shown[0]?.key || '', r: 'day', d: ymd(today), c: '', v: 'value', ...params };
  if (early && p.r === 'day' && !params.d) p.d = ymd(new Date(today.getFullYear(), today.getMonth() - 1, 15));
  if (!['hour', 'day', 'month', 'year'].includes(p.r)) p.r = 'day'; // a hand-made link
  let destroy = null;
  let seq = 0;

  const sel = h('select', { onchange: (e) => go({ m: e.target.value }) },
    h('optgroup', { label: t('meters') }, shown.map((m) => h('option', { value: m.key, selected: p.m === m.key }, m.name))),
    h('optgroup', { label: t('perkind') }, kinds.map((k) => h('option', { value: `kind:${k}`, selected: p.m === `kind:${k}` }, t(k))),
      netKinds.map((k) => h('option', { value: `net:${k}`, selected: p.m === `net:${k}` }, t('netof', { k: t(k) })))));
  // Compare with nothing, the period before, or the same period a year earlier (this March
  // against last March, this day against the same date last year).
  const cmp = h('select', { 'data-compare': '', onchange: (e) => go({ c: e.target.value }) },
    [['', 'cmpnone'], ['1', 'cmpprev'], ['y', 'cmpyear']].map(([v, k]) => h('option', { value: v, selected: (p.c || '') === v }, t(k))));
  const show = h('select', { onchange: (e) => go({ v: e.target.value }) },
    ['value', 'cost'].map((v) => h('option', { value: v, selected: p.v === v }, t(v === 'value' ? 'consumption' : 'energy'))));
  const bar = h('div', { class: 'ctl' });
  const out = h('section', { class: 'card hist', 'aria-busy': 'true' });
  const go = keeper('history', p, load, out);
  main.replaceChildren(h('h1', { class: 'sr-only' }, t('history')),
    h('div', { class: 'ctl' }, field(t('meter'), sel), field(t('show'), show), field(t('compare'), cmp)),
    bar, out);

  async function load() {
    const my = ++seq;
    const tb = toolbar(p, ['hour', 'day', 'month', 'year'], go);
    bar.replaceChildren(tb.radios, tb.nav);
    out.setAttribute('aria-busy', 'true');
    const d = parseDay(p.d);
    const meter = !p.m.includes(':');
    // A production meter's money is what it earned; a net series', the cost less that.
    const money_ = meter && produces(p.m) ? t('compensation') : t('energy');
    const yearAgo = p.c === 'y' && p.r !== 'year' && p.r !== 'month';
    const back = yearAgo ? new Date(d.getFullYear() - 1, d.getMonth(), d.getDate()) : shift(p.r, d, -1, true);
    const [cur, before] = await Promise.all([range(p.r, d), p.c ? range(p.r, back) : null]);
    // A year by month: its days too, for the average weekday against the weekend day.
    const [doc, prev, daily] = await Promise.all([series(p.m, cur), p.c ? series(p.m, before) : null,
      p.r === 'month' ? series(p.m, { ...cur, resolution: 'day' }).catch(() => null) : null]);
    if (gone() || my !== seq) return;
    const now = Date.now() / 1000;
    // The ten-year view starts with the year logging began; other views keep their axis.
    const b = p.r === 'year' && doc.since != null ? doc.buckets.filter((x) => x.end > doc.since) : doc.buckets;
    const data = b.filter((x) => x.value != null); // the rows: no rows before logging or after now
    const vals = b.map((x) => (x.start > now ? null : x.value));
    const costs = b.map((x) => (x.start > now ? null : x.cost));
    const skip = doc.buckets.length - b.length;
    const pv = prev ? b.map((_, i) => prev.buckets[i + skip]?.value ?? null) : null;
    const pc = prev ? b.map((_, i) => prev.buckets[i + skip]?.cost ?? null) : null;
    const labels = b.map((x) => bucketLabel(p.r, x.start));
    const isCost = p.v === 'cost';
    const dec = colDigits([...vals, ...(pv || [])], doc.unit);
    const fq = (v) => qty(v, doc.unit, dec);
    const total = sum(vals);
    const totalCost = sum(costs);
    const past = b.filter((x) => x.start <= now && x.reading_end != null);
    const rEnd = past.at(-1)?.reading_end;
    // The reading at the start comes from the server: a correction inside the period would make
    // "reading at the end minus consumption" wrong.
    const rStart = meter && b[0]?.start <= now ? b[0].reading_start ?? null : null;
    const fr = (v) => (v == null ? '–' : `${num(v, 3)} ${doc.unit}`);

    destroy?.();
    destroy = null;
    Object.assign(out.dataset, { key: p.m, res: p.r, start: b[0]?.start ?? '', end: b.at(-1)?.end ?? '', buckets: b.length });
    const chart = h('div', { class: 'chart', role: 'img', 'aria-label': t('chart', { t: `${sel.selectedOptions[0]?.text} ${periodTitle(p.r, period(p.r, d))}` }) });
    const before_ = prev ? periodTitle(p.r, period(p.r, back)) : '';
    // Electricity per day: the base load (the lowest night hour), what stays on all night.
    const base = meter && b.some((x) => x.base_load != null);
    const head = [t('period'), meter && produces(p.m) ? t('produced') : p.m.startsWith('net:') ? t('net') : t('consumption'), prev && before_, money_, prev && `${before_} (${money_})`, base && t('baseload'), meter && t('rend')];
    // Per day (of the month, or of the year by month): the average weekday against the average
    // weekend day, over the whole days with data (today so far would pull its average down).
    const days = p.r === 'day' ? data : daily?.buckets?.filter((x) => x.value != null);
    const wk = days ? [false, true].map((we) => { const xs = days.filter((x) => x.end <= now && weekend(x.start + 43200) === we); return xs.length ? sum(xs.map((x) => x.value)) / xs.length : null; }) : null;
    const began = doc.since != null && doc.since > b[0]?.start && doc.since < (b.at(-1)?.end ?? 0);
    out.replaceChildren(
      !data.length ? h('p', { class: 'note', 'data-nodata': '' }, t('nodataperiod'), doc.since != null ? ` ${t('began', { t: date(doc.since, { dateStyle: 'long' }) })}` : '')
        : began ? h('p', { class: 'muted', 'data-began': '' }, t('began', { t: date(doc.since, { dateStyle: 'long' }) })) : '',
      h('dl', { class: 'totals' },
        h('div', null, h('dt', null, t('total')), h('dd', { 'data-total': '', 'data-value': total ?? '', 'data-pulses': meter ? sum(b.map((x) => x.pulses)) ?? '' : '' }, fq(total))),
        prev && h('div', null, h('dt', null, before_), h('dd', { 'data-prev-total': sum(pv) ?? '' }, fq(sum(pv)))),
        h('div', null, h('dt', null, money_), h('dd', { 'data-cost': totalCost ?? '' }, money(totalCost))),
        wk && wk[0] != null && h('div', null, h('dt', null, t('weekday')), h('dd', { 'data-weekday': wk[0] }, fq(wk[0]))),
        wk && wk[1] != null && h('div', null, h('dt', null, t('weekend')), h('dd', { 'data-weekend': wk[1] }, fq(wk[1]))),
        meter && h('div', null, h('dt', null, t('rstart')), h('dd', { 'data-reading-start': rStart ?? '' }, fr(rStart))),
        meter && h('div', null, h('dt', null, t('rend')), h('dd', { 'data-reading-end': rEnd ?? '' }, fr(rEnd)))),
      meter ? h('p', { class: 'downloads' },
        h('a', { href: `api/meters/${encodeURIComponent(p.m)}/export.csv?${qs(cur)}`, download: '', 'data-download': 'csv' }, t('csv')), ' · ',
        h('a', { href: `api/meters/${encodeURIComponent(p.m)}/export.csv?${qs(yearRange(d))}`, download: '', 'data-download': 'readings' }, t('csvmonths'))) : '',
      chart,
      h('div', { class: 'scroll' }, h('table', { class: 'data' },
        h('thead', null, h('tr', null, head.filter(Boolean).map((x, i) => h('th', { scope: 'col', class: i ? `n${x === head[4] ? ' opt' : ''}` : '' }, x)))),
        h('tbody', null, b.map((x, i) => x.value == null ? null : h('tr', { 'data-start': x.start, 'data-value': x.value, 'data-pulses': x.pulses },
          h('th', { scope: 'row', title: labels[i][1] }, labels[i][2]),
          h('td', { class: 'n' }, fq(vals[i])),
          prev && h('td', { class: 'n' }, fq(pv[i])),
          h('td', { class: 'n' }, money(costs[i])),
          prev && h('td', { class: 'n opt' }, money(pc[i])),
          base && h('td', { class: 'n', 'data-base-load': x.base_load ?? '' }, x.base_load == null ? '–' : `${num(x.base_load, 0)} W`),
          meter && h('td', { class: 'n' }, x.start > now ? '–' : fr(x.reading_end))))),
        h('tfoot', null, h('tr', null, h('th', { scope: 'row' }, t('total')), h('td', { class: 'n' }, fq(total)),
          prev && h('td', { class: 'n' }, fq(sum(pv))), h('td', { class: 'n' }, money(totalCost)),
          prev && h('td', { class: 'n opt' }, money(sum(pc))), base && h('td', null), meter && h('td', null))))));
    const color = `--${meter ? tint(shown.find((m) => m.key === p.m)) : p.m.split(':')[1]}`;
    const fm = isCost ? (v) => money(v) : fq;
    const done = await bars(chart, {
      xLabel: t('period'),
      fmtAxis: isCost ? (v) => money(v, undefined, Number.isInteger(v) ? 0 : 2) : undefined,
      labels: labels.map((l) => l[0]),
      titles: labels.map((l) => l[1]),
      series: [
        { label: periodTitle(p.r, period(p.r, d)), values: isCost ? costs : vals, color, fmt: fm },
        ...(prev ? [{ label: periodTitle(p.r, period(p.r, back)), values: isCost ? pc : pv, color: '--prev', fmt: fm }] : []),
      ],
    });
    if (gone() || my !== seq) return done();
    destroy = done;
    out.removeAttribute('aria-busy');
  }
  await load();
  return () => destroy?.();
}
