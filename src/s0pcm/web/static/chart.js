// Bar charts with the vendored uPlot (loaded on first use). x is the bucket index; series are
// drawn side by side (compare) or stacked (costs per kind).
import { h, num, date, state } from './lib.js';

let loading = null;
function uPlotLib() {
  loading ||= new Promise((ok, fail) => {
    document.head.append(h('link', { rel: 'stylesheet', href: 'static/vendor/uPlot.min.css' }));
    const failed = (e) => { loading = null; fail(e); }; // the next chart tries again
    document.head.append(h('script', { src: 'static/vendor/uPlot.iife.min.js', onload: () => ok(window.uPlot), onerror: failed }));
  });
  return loading;
}
// The pages that import this module draw a chart as soon as their data is in: fetch uPlot now,
// beside the data, not after it (a failure shows when a chart is drawn).
uPlotLib().catch(() => null);

/**
 * el: container; labels/titles: axis and legend label per bucket; series: [{label, values,
 * color (CSS variable name), fmt}]; stack: values are stacked (each series drawn on top of the
 * ones before it).
 */
export async function bars(el, { labels, titles, series, stack = false, xLabel = '', fmtAxis = (v) => num(v, 2, 0) }) {
  const uPlot = await uPlotLib();
  const css = getComputedStyle(document.documentElement);
  const c = (v) => css.getPropertyValue(v).trim();
  const n = labels.length;
  const side = !stack && series.length > 1;
  let data = series.map((s) => s.values);
  if (stack) {
    data = data.map((_, j) => labels.map((_, i) => data.slice(0, j + 1).reduce((a, v) => (v[i] == null ? a : (a ?? 0) + v[i]), null)));
  }
  const order = stack ? data.map((_, j) => data.length - 1 - j) : data.map((_, j) => j);
  const axis = { stroke: c('--muted'), grid: { stroke: c('--line'), width: 1 }, ticks: { show: false } };
  const height = () => (el.clientWidth < 500 ? 220 : 280);
  const u = new uPlot({
    width: el.clientWidth || 300,
    height: height(),
    scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: (_, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1] } },
    axes: [
      { ...axis, grid: { show: false }, incrs: [1, 2, 3, 4, 6, 12], space: 12 + 7 * Math.max(2, ...labels.map((l) => l.length)), values: (_, v) => v.map((i) => labels[i] ?? '') },
      { ...axis, size: 56, values: (_, v) => v.map(fmtAxis) },
    ],
    legend: { live: true },
    // The first draw of a page is marked for the page-load benchmark (bench/bench_page.py).
    hooks: { draw: [() => { if (!performance.getEntriesByName('s0pcm:chart').length) performance.mark('s0pcm:chart'); el.dataset.drawn = '1'; }] },
    cursor: { points: { show: false }, drag: { x: false, y: false } },
    series: [
      // Until a bar is pointed at, the legend names the series and shows no number ('–' read as
      // missing data).
      { label: xLabel, value: (_, i) => (i == null ? '' : titles[i] ?? '') },
      ...order.map((j) => ({
        label: series[j].label,
        fill: c(series[j].color),
        stroke: c(series[j].color),
        width: 0,
        points: { show: false },
        value: (u, _v, _s, i) => (i == null ? '' : series[j].fmt(series[j].values[i])),
        paths: uPlot.paths.bars({ size: [side ? 0.42 : 0.7, 80], align: side ? (j === 0 ? 1 : -1) : 0 }),
      })),
    ],
  }, [labels.map((_, i) => i), ...order.map((j) => data[j])], el);
  const ro = new ResizeObserver(() => u.setSize({ width: el.clientWidth, height: height() }));
  ro.observe(el);
  return () => { ro.disconnect(); u.destroy(); };
}

/**
 * A line over time (Unix seconds ``xs``) per series, each on its own y scale (``scale``: W and
 * L/min do not share an axis): the live power and flow of the last hours. Gaps (null) are gaps.
 */
export async function lines(el, { xs, series, xLabel = '' }) {
  const uPlot = await uPlotLib();
  const css = getComputedStyle(document.documentElement);
  const c = (v) => css.getPropertyValue(v).trim();
  const axis = { stroke: c('--muted'), grid: { stroke: c('--line'), width: 1 }, ticks: { show: false } };
  const height = () => (el.clientWidth < 500 ? 200 : 240);
  const scales = [...new Set(series.map((s) => s.scale))];
  const u = new uPlot({
    width: el.clientWidth || 300,
    height: height(),
    // Times in the logger's zone, as every other view shows them.
    tzDate: (ts) => (state.tz ? uPlot.tzDate(new Date(ts * 1e3), state.tz) : new Date(ts * 1e3)),
    scales: { x: { time: true }, ...Object.fromEntries(scales.map((k) => [k, { range: (_, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1] }])) },
    axes: [
      // Clock times in the page's language and the logger's zone (24 h), not uPlot's own.
      { ...axis, grid: { show: false }, space: 70, values: (_, v) => v.map((x) => date(x, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })) },
      ...scales.map((k, i) => ({ ...axis, scale: k, side: i ? 1 : 3, size: 64, grid: { show: i === 0, stroke: c('--line'), width: 1 }, values: (_, v) => v.map((x) => `${num(x, x >= 100 ? 0 : 1, 0)} ${k}`) })),
    ],
    legend: { live: true },
    hooks: { draw: [() => { if (!performance.getEntriesByName('s0pcm:power').length) performance.mark('s0pcm:power'); el.dataset.drawn = '1'; }] },
    cursor: { points: { show: false }, drag: { x: true, y: false } },
    series: [
      { label: xLabel, value: (_, x) => (x == null ? '' : date(x, { timeStyle: 'medium' })) },
      ...series.map((s) => ({
        label: s.label, scale: s.scale, stroke: c(s.color), width: 1.5, points: { show: false }, spanGaps: false,
        value: (u, v) => (v == null ? '' : s.fmt(v)),
      })),
    ],
  }, [xs, ...series.map((s) => s.values)], el);
  const ro = new ResizeObserver(() => u.setSize({ width: el.clientWidth, height: height() }));
  ro.observe(el);
  return { update: (xs2, values) => u.setData([xs2, ...values]), destroy: () => { ro.disconnect(); u.destroy(); } };
}
