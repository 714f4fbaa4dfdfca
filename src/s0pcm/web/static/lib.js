// Shared by the pages: DOM building, words and numbers, the API, the live stream, periods.
import { DICT } from './i18n.js';

export const state = { lang: 'en', csrf: null, loggedIn: false, currency: null, tz: undefined };

// -- DOM: h('p', {class: 'x', onclick: f}, 'text', child, [more])
const PROPS = new Set(['value', 'checked', 'disabled', 'selected']);
export function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (PROPS.has(k)) e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat(9)) if (c != null && c !== false) e.append(c);
  return e;
}
let uid = 0;
export const id = (p = 'f') => `${p}${++uid}`;
/** A labelled form field: label above the control. */
export function field(label, control, cls = '') {
  control.id ||= id();
  return h('div', { class: `field ${cls}` }, h('label', { for: control.id }, label), control);
}
export const msg = () => h('p', { class: 'msg', role: 'status', 'aria-live': 'polite' });
export function say(el, text, bad = false) { el.textContent = text; el.classList.toggle('bad', bad); }

// -- words
export function t(key, vars) {
  let s = DICT[state.lang]?.[key] ?? DICT.en[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (_, k) => vars[k]);
  return s;
}

// -- numbers and dates, in the chosen language (English the European way: 24-hour clock)
const cache = new Map();
function intl(Kind, opts) {
  if (Kind === Intl.DateTimeFormat) opts = { timeZone: state.tz, ...opts };
  const k = Kind.name + state.lang + JSON.stringify(opts);
  let f = cache.get(k);
  if (!f) cache.set(k, (f = new Kind(state.lang === 'en' ? 'en-GB' : state.lang, opts)));
  return f;
}
export const num = (v, digits = 0, min = digits) =>
  v == null || !isFinite(v) ? '–'
    : intl(Intl.NumberFormat, { minimumFractionDigits: min, maximumFractionDigits: digits }).format(v);
/** Digits that suit a consumption of this size: 3 below 10, down to 0 from 1000. */
export const digits = (v) => { const a = Math.abs(v ?? 0); return a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : 3; };
/** Units counted in whole steps (a litre is one pulse): no decimals. */
const WHOLE = new Set(['L', 'W', 'pulses']);
export const qty = (v, unit, d) => (v == null ? t('nodata') : `${num(v, d ?? (WHOLE.has(unit) ? 0 : digits(v)))} ${unit || ''}`.trim());
/** One number of decimals for a whole column (its largest value decides), so it lines up. */
export const colDigits = (vals, unit) => (WHOLE.has(unit) ? 0 : digits(Math.max(0, ...vals.filter((v) => v != null).map(Math.abs))));
/** A clock time today, or a date and time before today. */
export const clock = (ts) => date(ts, new Date(ts * 1000).toDateString() === new Date().toDateString() ? { timeStyle: 'short' } : { dateStyle: 'medium', timeStyle: 'short' });
export const rate = (v, unit) =>
  v == null ? t('unavailable') : `${num(v, Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2, 0)} ${unit}`;
export const money = (v, cur = state.currency, d) =>
  v == null || !cur ? '–' : intl(Intl.NumberFormat, { style: 'currency', currency: cur, ...(d == null ? {} : { minimumFractionDigits: d, maximumFractionDigits: d }) }).format(v);
export const date = (ts, opts) => intl(Intl.DateTimeFormat, opts).format(new Date(ts * 1000));
/** Unix seconds of a wall-clock time "YYYY-MM-DDTHH:MM" in the logger's time zone (the one the
 * page shows), whatever the browser's is. */
export function zoned(wall) {
  const [y, mo, d, hh, mi] = wall.split(/\D/).map(Number);
  const utc = Date.UTC(y, mo - 1, d, hh, mi) / 1000;
  const offset = (ts) => {
    const parts = Object.fromEntries(intl(Intl.DateTimeFormat, { year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric', hourCycle: 'h23' })
      .formatToParts(new Date(ts * 1000)).map((x) => [x.type, +x.value]));
    return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second) / 1000 - ts;
  };
  const first = utc - offset(utc);
  return utc - offset(first); // again at the answer: right across a DST change
}
/** Whether the instant falls on a Saturday or Sunday in the configured zone. */
let weekdays = null;
let weekdaysTz = null;
export function weekend(ts) {
  if (!weekdays || weekdaysTz !== state.tz) {
    weekdays = new Intl.DateTimeFormat('en-US', { weekday: 'short', timeZone: state.tz });
    weekdaysTz = state.tz;
  }
  return /^S/.test(weekdays.format(new Date(ts * 1000)));
}
/** A meter's colour and class: its kind's, or production's (a solar inverter is not a load). */
export const tint = (m) => (m?.direction === 'production' ? 'production' : m?.kind || 'other');
export const when = (ts) => date(ts, { dateStyle: 'medium', timeStyle: 'medium' });
export function age(s) {
  if (s == null) return t('never');
  const [v, u] = s < 120 ? [s, 'second'] : s < 7200 ? [s / 60, 'minute'] : [s / 3600, 'hour'];
  return t('ago', { t: intl(Intl.NumberFormat, { style: 'unit', unit: u, unitDisplay: 'short', maximumFractionDigits: u === 'hour' ? 1 : 0 }).format(v) });
}
export const KINDS = ['electricity', 'gas', 'water', 'heat', 'other'];
/** The sum of the known values; null when none is known. */
export const sum = (xs) => xs.reduce((a, v) => (v == null ? a : (a ?? 0) + v), null);

// -- the API (relative URLs: works behind a reverse proxy or Home Assistant ingress)
/** ``text`` (the server's English words) said by the first template of ``table`` whose pattern
 * matches, with the parts it captured: numbers in the page's format, weekdays by name. */
const WEEK_EN = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
const NUMBER = /^-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$/;
const part = (x) => (x == null ? ''
  : NUMBER.test(x) ? num(+x.replace(/,/g, ''), (x.split('.')[1] || '').length)
    : WEEK_EN.includes(x) ? intl(Intl.DateTimeFormat, { weekday: 'long', timeZone: 'UTC' }).format(new Date(Date.UTC(2024, 0, 1 + WEEK_EN.indexOf(x))))
      : x);
export function phrase(text, table, over = null) {
  for (const [re, key] of table) {
    const m = re.exec(text || '');
    if (m) return t(key, { ...Object.fromEntries(m.slice(1).map((x, i) => [i + 1, part(x)])), ...over });
  }
  return null;
}
/** The refusals a person meets in the forms (tariffs, readings), by the server's words. */
const REFUSALS = [
  [/^(\w+day) (\d\d:00)-(\d\d:00) is in no period/, 'y_noperiod'],
  [/^overlaps periods\[\d+\] on (\w+day) (\d\d:00)/, 'y_overlap'],
  [/^is before valid_from/, 'y_tobefore'],
  [/both apply on (\S+)$/, 'y_bothapply'],
  [/^names a weekday twice/, 'y_daytwice'],
  [/^must be a whole hour/, 'y_wholehour'],
  [/^an ISO 4217 code/, 'y_currency'],
  [/^lies in the future/, 'y_future'],
  [/cannot be taken back/, 'y_notundoable'],
  [/^must be a number/, 'y_number'],
  [/^missing/, 'y_missing'],
];
const MESSAGES = [
  [/^a reading is already set at that moment/, 'y_readingset'],
];
/** A refused request in the page's language: what kind of refusal (by status), then what the
 * server said of it, in the page's language where a template says it (else its own words,
 * which name the field or value; a refused login says all in its status). */
export function explain(e) {
  const kind = { 400: 'err400', 401: 'err401', 403: 'err403', 404: 'err404', 409: 'err409', 413: 'err413', 429: 'toomany' }[e.status];
  // A 400 names the field it refuses ("bad price"): kept, as the name the API uses.
  const field = e.status === 400 && /^bad /.test(e.message || '') ? ` (${e.message.slice(4)})` : '';
  const message = phrase(e.message, MESSAGES);
  const what = message ?? (kind ? `${t(kind)}${field}` : e.message);
  const raw = e.detail == null ? '' : typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail);
  const detail = phrase(raw, REFUSALS) ?? (message || [401, 403, 429].includes(e.status) ? '' : raw);
  return detail ? `${what} ${detail}` : what;
}
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.detail = body?.detail;
  }
}
const early = new Map();
/** Ask for GET ``path`` now, before the page that needs it has loaded: its first api(path) in the
 * next few seconds takes this answer instead of asking again. */
export function prefetch(path) {
  const p = request(path);
  p.catch(() => null); // a failure shows where the answer is used
  early.set(path, { at: Date.now(), p });
}
/** Forget what was asked for early (it was for the first page as the first session saw it). */
export const dropPrefetched = () => early.clear();
export function api(path, method = 'GET', body) {
  const hit = method === 'GET' && early.get(path);
  if (hit) {
    early.delete(path);
    if (Date.now() - hit.at < 5000) return hit.p;
  }
  return request(path, method, body);
}
async function request(path, method = 'GET', body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  const r = await fetch(`api/${path}`, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}
export async function session() {
  try {
    const s = await api('session');
    // The logger's time zone, when the server tells it: dates show as the server counts them.
    Object.assign(state, { loggedIn: !!s.logged_in, csrf: s.csrf || null, tz: s.timezone || undefined, passwordSet: s.password_set !== false });
  } catch { state.loggedIn = false; }
  return state.loggedIn;
}
export const qs = (o) => new URLSearchParams(o).toString();

/** The login form; calls done() after a successful login. */
export function loginForm(note, done) {
  const pw = h('input', { type: 'password', name: 'password', required: true, autocomplete: 'current-password' });
  const out = msg();
  // A fresh install has no password: say how to set one, not "wrong password".
  const nopw = () => h('div', { class: 'note', 'data-nopassword': '' }, h('p', null, t('nopw')), h('pre', null, h('code', null, 's0pcm passwd --config /etc/s0pcm/s0pcm.toml')), h('p', { class: 'muted' }, t('nopw2')));
  const form = h('form', {
    class: 'card login', 'data-login': '',
    async onsubmit(ev) {
      ev.preventDefault();
      try {
        const r = await api('login', 'POST', { password: pw.value });
        Object.assign(state, { loggedIn: true, csrf: r.csrf });
        done();
      } catch (e) {
        if (e.status === 401 && String(e.detail || '').includes('no password')) { state.passwordSet = false; form.querySelector('[data-nopassword]') || form.insertBefore(nopw(), form.querySelector('.field')); say(out, t('nopwyet'), true); } else say(out, e.status === 401 ? t('badpw') : e.status === 429 ? t('toomany') : e.message, true);
        pw.select();
      }
    },
  }, h('h2', null, t('login')), h('p', null, note), state.passwordSet === false && nopw(), h('input', { name: 'username', autocomplete: 'username', value: 's0pcm', hidden: true }), field(t('password'), pw),
  h('button', { class: 'primary' }, t('login')), out);
  return form;
}

// -- the live stream (one EventSource shared by whoever listens)
let es = null;
const subs = new Set();
export function listen(fn) {
  subs.add(fn);
  if (!es) {
    es = new EventSource('api/live');
    const send = (type, ev) => {
      let d = null;
      try { d = ev && ev.data ? JSON.parse(ev.data) : null; } catch { return; }
      for (const f of subs) f(type, d);
    };
    for (const type of ['update', 'health']) es.addEventListener(type, (ev) => send(type, ev));
    es.onopen = () => send('open');
    es.onerror = () => send('error');
  }
  return () => {
    subs.delete(fn);
    if (!subs.size && es) { es.close(); es = null; }
  };
}

// -- calendar periods. res is the bar: hour, day, month or year; the period shown is a day, a
// month, a year or ten years.
export const ymd = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
export function parseDay(s) {
  const m = /^(\d{4})-(\d\d)-(\d\d)$/.exec(s || '');
  return m ? new Date(+m[1], m[2] - 1, +m[3]) : new Date();
}
export function period(res, d) {
  const y = d.getFullYear(), m = d.getMonth();
  return {
    hour: [new Date(y, m, d.getDate()), new Date(y, m, d.getDate() + 1)],
    day: [new Date(y, m, 1), new Date(y, m + 1, 1)],
    month: [new Date(y, 0, 1), new Date(y + 1, 0, 1)],
    year: [new Date(y - 9, 0, 1), new Date(y + 1, 0, 1)],
  }[res];
}
/** Move by n periods (step) or by the comparison distance (cmp: a year back in the year view). */
export function shift(res, d, n, cmp = false) {
  const y = d.getFullYear(), m = d.getMonth();
  return {
    hour: new Date(y, m, d.getDate() + n),
    day: new Date(y, m + n, 1),
    month: new Date(y + n, 0, 1),
    year: new Date(y + (cmp ? 1 : 10) * n, 0, 1),
  }[res];
}
/** The query for the period around d, in the logger's days (its time zone may differ from the
 * browser's): bars of a day or longer are asked for from half a day inside the period, so the
 * server's own days are the ones that overlap; for hours, the server says where the day runs. */
export async function range(res, d) {
  const [a, b] = period(res, d).map((x) => x / 1000);
  if (res !== 'hour') return { start: a + 43200, end: b - 43200, resolution: res };
  const noon = (a + b) / 2;
  const day = (await api(`costs?${qs({ start: noon - 1, end: noon, resolution: 'day' })}`)).buckets[0];
  return { start: day.start, end: day.end, resolution: res };
}
const LABEL = {
  hour: [null, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' }, { hour: '2-digit', minute: '2-digit' }],
  day: [{ day: 'numeric' }, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }, { weekday: 'short', day: 'numeric', month: 'short' }],
  month: [{ month: 'short' }, { month: 'long', year: 'numeric' }, { month: 'long' }],
  year: [{ year: 'numeric' }, { year: 'numeric' }, { year: 'numeric' }],
};
/** [axis label, full label, table label] of the bucket starting at ts. */
export const bucketLabel = (res, ts) => LABEL[res].map((o, i) =>
  (res === 'hour' && !i ? intl(Intl.DateTimeFormat, { hour: '2-digit', hourCycle: 'h23' }).formatToParts(new Date(ts * 1000)).find((x) => x.type === 'hour').value : date(ts, o)));
/** The period's name, said in the logger's zone from half a day inside its browser-local
 * edges (as :func:`range` asks for it): the same day, month or year when the zones differ. */
export function periodTitle(res, [a, b]) {
  const s = a / 1000 + 43200, e = b / 1000 - 43200;
  if (res === 'hour') return date((s + e) / 2, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
  if (res === 'day') return date(s, { month: 'long', year: 'numeric' });
  if (res === 'month') return date(s, { year: 'numeric' });
  return `${date(s, { year: 'numeric' })} – ${date(e, { year: 'numeric' })}`;
}
