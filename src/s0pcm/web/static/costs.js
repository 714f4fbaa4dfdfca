// Costs: per day (of a month), month (of a year) or year (ten years) the cost per kind, stacked,
// and for the whole period consumption, usage and fixed charges per kind with the total.
import { h, t, api, qs, qty, money, sum, state, KINDS, ymd, parseDay, period, range, bucketLabel, periodTitle } from './lib.js';
import { bars } from './chart.js';
import { toolbar, keeper } from './history.js';

export async function mount(main, params, gone) {
  const p = { r: 'day', d: ymd(new Date()), ...params };
  if (!['day', 'month', 'year'].includes(p.r)) p.r = 'day'; // a hand-made link
  const bar = h('div', { class: 'ctl' });
  const out = h('section', { class: 'card costs' });
  const go = keeper('costs', p, load, out);
  let destroy = null;
  let seq = 0;
  main.replaceChildren(h('h1', { class: 'sr-only' }, t('costs')), bar, out);

  async function load() {
    const my = ++seq;
    const tb = toolbar(p, ['day', 'month', 'year'], go);
    bar.replaceChildren(tb.radios, tb.nav);
    const d = parseDay(p.d);
    const [doc, tariffs] = await Promise.all([api(`costs?${qs(await range(p.r, d))}`), api('tariffs').catch(() => null)]);
    if (gone() || my !== seq) return;
    const cur = (state.currency = doc.currency || state.currency);
    const now = Date.now() / 1000;
    // Buckets with data only: none before logging began, none after now (no data is not zero).
    const b = doc.buckets.filter((x) => x.start <= now && Object.values(x.by_kind || {}).some((c) => c.value != null || c.produced != null));
    const untariffed = !tariffs?.tariffs?.length;
    const kinds = KINDS.filter((k) => doc.buckets.some((x) => x.by_kind?.[k]));
    const labels = doc.buckets.map((x) => bucketLabel(p.r, x.start));
    const cell = (x, k) => x.by_kind?.[k];
    const per = (k, f) => sum(b.map((x) => cell(x, k)?.[f]));
    const total = sum(b.map((x) => x.total));
    const unitOf = (k) => b.map((x) => cell(x, k)?.unit).find(Boolean);
    // Production meters (solar): what they made, the net, and what it earned, in columns of their own.
    const made = kinds.some((k) => b.some((x) => cell(x, k)?.produced != null));
    destroy?.();
    destroy = null;
    Object.assign(out.dataset, { res: p.r, start: doc.buckets[0]?.start ?? '', end: doc.buckets.at(-1)?.end ?? '' });
    const chart = h('div', { class: 'chart', role: 'img', 'aria-label': t('chart', { t: `${t('costs')} ${periodTitle(p.r, period(p.r, d))}` }) });
    out.replaceChildren(
      untariffed ? h('p', { class: 'note', 'data-notariff': '' }, h('a', { href: '#/settings' }, t('notariff'))) : '',
      !b.length ? h('p', { class: 'note', 'data-nodata': '' }, t('nodataperiod')) : '',
      h('p', { class: 'big' }, t('total'), ' ', h('strong', { 'data-total': total ?? '' }, money(total, cur))),
      h('div', { class: 'scroll' }, h('table', { class: 'breakdown' },
        h('thead', null, h('tr', null, [t('kind'), t('consumption'), made && t('produced'), made && t('net'), t('energy'), t('fixed'), made && t('compensation'), t('total')].filter(Boolean).map((x, i) => h('th', { scope: 'col', class: i ? `n${x === t('energy') || x === t('fixed') ? ' opt' : ''}` : '' }, x)))),
        h('tbody', null, kinds.map((k) => h('tr', { class: `k-${k}`, 'data-kind': k },
          h('th', { scope: 'row' }, h('span', { class: 'dot' }), t(k)),
          h('td', { class: 'n', 'data-value': per(k, 'value') ?? '' }, qty(per(k, 'value'), unitOf(k))),
          // A kind without production meters has nothing to net: a dash, not "no data".
          made && h('td', { class: 'n', 'data-produced': per(k, 'produced') ?? '' }, per(k, 'produced') == null ? '–' : qty(per(k, 'produced'), unitOf(k))),
          made && h('td', { class: 'n', 'data-net': per(k, 'net') ?? '' }, per(k, 'net') == null ? '–' : qty(per(k, 'net'), unitOf(k))),
          h('td', { class: 'n opt' }, money(per(k, 'energy_cost'), cur)),
          h('td', { class: 'n opt' }, money(per(k, 'fixed_cost'), cur)),
          made && h('td', { class: 'n', 'data-compensation': per(k, 'compensation') ?? '' }, per(k, 'compensation') == null ? '–' : money(per(k, 'compensation') ? -per(k, 'compensation') : 0, cur)),
          h('td', { class: 'n', 'data-cost': per(k, 'cost') ?? '' }, money(per(k, 'cost'), cur))))),
        h('tfoot', null, h('tr', null, h('th', { scope: 'row' }, t('total')), h('td'), made && h('td'), made && h('td'), h('td', { class: 'n opt' }, money(sum(kinds.map((k) => per(k, 'energy_cost'))), cur)),
          h('td', { class: 'n opt' }, money(sum(kinds.map((k) => per(k, 'fixed_cost'))), cur)),
          made && h('td', { class: 'n' }, money(-(sum(kinds.map((k) => per(k, 'compensation'))) || 0) || 0, cur)),
          h('td', { class: 'n' }, money(total, cur)))))),
      chart,
      h('div', { class: 'scroll' }, h('table', { class: 'data' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('period')), kinds.map((k) => h('th', { scope: 'col', class: 'n' }, t(k))), h('th', { scope: 'col', class: 'n' }, t('total')))),
        h('tbody', null, doc.buckets.map((x, i) => !b.includes(x) ? null : h('tr', { 'data-start': x.start },
          h('th', { scope: 'row', title: labels[i][1] }, labels[i][2]),
          kinds.map((k) => h('td', { class: 'n', title: cell(x, k) ? qty(cell(x, k).value, cell(x, k).unit) : '' }, x.start > now ? '–' : money(cell(x, k)?.cost, cur))),
          h('td', { class: 'n' }, x.start > now ? '–' : money(x.total, cur))))))));
    const future = (i) => doc.buckets[i].start > now;
    const done = await bars(chart, {
      labels: labels.map((l) => l[0]),
      titles: labels.map((l) => l[1]),
      stack: true,
      xLabel: t('period'),
      fmtAxis: (v) => money(v, cur, Number.isInteger(v) ? 0 : 2),
      series: kinds.map((k) => ({ label: t(k), color: `--${k}`, fmt: (v) => money(v, cur), values: doc.buckets.map((x, i) => (future(i) ? null : cell(x, k)?.cost ?? null)) })),
    });
    if (gone() || my !== seq) return done();
    destroy = done;
  }
  await load();
  return () => destroy?.();
}
