// Device: per module its connection, firmware, thresholds, last record and counters (from
// /api/health, refreshed by the live stream), the MQTT link, and the event log (/api/events).
import { h, t, api, qs, listen, num, age, when, field, phrase } from './lib.js';

const EVENTS = ['connected', 'disconnected', 'startup', 'restart', 'rejected', 'spike', 'glitch', 'unconfirmed', 'mismatch', 'gap', 'correction', 'replacement', 'thresholds_sent', 'thresholds_confirmed', 'thresholds_refused', 'watchdog', 'clock', 'storage', 'outbox'];

function moduleCard(m) {
  const c = m.counters || {};
  const row = (k, v, attr) => h('div', attr, h('dt', null, t(k)), h('dd', null, v ?? '–'));
  return h('article', { class: 'card module', 'data-module': m.name },
    h('header', null, h('h2', null, m.name),
      h('span', { class: `badge ${m.connected ? 'ok' : 'bad'}`, 'data-connected': String(!!m.connected) }, t(m.connected ? 'connected' : 'disconnected'))),
    h('dl', { class: 'facts' },
      row('port', m.port),
      row('moduleid', m.module_id),
      row('firmware', m.firmware),
      row('thresholds', m.thresholds ? `${m.thresholds.join('/')} ms` : null),
      m.thresholds_pending && row('pending', m.thresholds_pending, { class: 'warn', 'data-pending': m.thresholds_pending }),
      row('lastrecord', age(m.last_telegram_age)),
      m.since && row('since', when(m.since)),
      row('records', num(c.telegrams)),
      row('rejected', num(c.rejected)),
      row('startups', num((c.restarts || 0) + (c.headers || 0))),
      row('spikes', num(c.spikes)),
      row('glitches', num(c.glitches)),
      row('gaps', num(c.gaps)),
      row('mismatches', num(c.mismatches)),
      m.last_problem && row('problem', m.last_problem, { class: 'wide' })));
}

/** The MQTT link of the health document: connected, broker, outbox depth, last sent, last
 * problem (Device shows it as a card, Settings in its MQTT section). */
export function mqttFacts(link, at) {
  const row = (k, v, attr) => h('div', attr, h('dt', null, t(k)), h('dd', null, v ?? '–'));
  return [
    h('span', { class: `badge ${link.connected ? 'ok' : 'bad'}`, 'data-connected': String(!!link.connected) }, t(link.connected ? 'connected' : 'disconnected')),
    h('dl', { class: 'facts' },
      row('broker', link.broker),
      row('outbox', num(link.outbox), { 'data-outbox': String(link.outbox) }),
      row('lastpublish', link.last_publish == null ? t('never') : age(Math.max(0, at - link.last_publish))),
      link.since && row('since', when(link.since)),
      row('mqttsent', num(link.sent)),
      link.dropped > 0 && row('mqttdropped', num(link.dropped), { class: 'warn' }),
      link.last_error && row('problem', link.last_error, { class: 'wide', 'data-mqtt-error': '' })),
  ];
}

function mqttCard(link, at) {
  const [badge, facts] = mqttFacts(link, at);
  return h('article', { class: 'card module', 'data-mqtt': '' }, h('header', null, h('h2', null, t('mqtt')), badge), facts);
}

/** What the server's event details say, by kind: a pattern of its English words and the
 * template that says it in the page's language with the parts it captured (a port, a line, a
 * number). The first match wins; the server's own words stay in the tooltip. */
const DETAILS = [
  ['correction', /^reading set to (\S+) (.*?) \(was (\S+)\)$/, 'x_setwas'],
  ['replacement', /^reading set to (\S+) (.*?) \(was (\S+)\)$/, 'x_newwas'],
  ['correction', /^(\S+) pulses per (.*) from now on \(was (\S+)\)$/, 'x_constant'],
  ['correction', /^reading (\S+) (.*) set for (\S+) taken back$/, 'x_undone'],
  ['disconnected', /^(.*?): (.*)$/, 'x_disconnected'],
  ['watchdog', /^(.*?): (.*)$/, 'x_watchdog'],
  ['startup', /^a damaged start-up header: (.*)$/, 'x_badheader'],
  ['rejected', /^(.*?): (['"].*)$/, 'x_rejected'],
  ['restart', /^totals went back/, 'x_wentback'],
  ['restart', /^interval counts show/, 'x_startedagain'],
  ['glitch', /^start-up header, but/, 'x_headeron'],
  ['glitch', /^a corrupted record, not counted: (.*)$/, 'x_corrupt'],
  ['glitch', /^neither a restart nor a continuation explains (.*?); registers/, 'x_unexplained'],
  ['unconfirmed', /^(.*?), near the end of a module life, disagrees/, 'x_disagrees'],
  ['unconfirmed', /^(.*?) ended a module life after a break/, 'x_unchecked'],
  ['unconfirmed', /^(.*?) and a record next to it disagree/, 'x_lower'],
  ['clock', /^clock stepped by (.*)$/, 'x_stepped'],
  ['clock', /^(\d+) records arrived while the clock was (.*?) behind/, 'x_late'],
  ['storage', /^cannot store: (.*)$/, 'x_nostore'],
  ['storage', /^storing again after (\d+) failed commits over (\d+) min/, 'x_storeagain'],
  ['outbox', /^MQTT outbox has room again: (\d+)/, 'x_outboxroom'],
  ['outbox', /^MQTT outbox full/, 'x_outboxfull'],
];
/** The templates by event kind, made once. */
const BY_KIND = DETAILS.reduce((m, [kind, re, key]) => m.set(kind, [...(m.get(kind) || []), [re, key]]), new Map());
/** An event's detail in the page's language: a template of :data:`DETAILS` (a reading it says
 * is the event's own value to three decimals: the server's words round it), else one that says it
 * with the event's own value, else the server's words (ports, lines, commands). */
function detail(e) {
  const text = e.detail || '';
  const v = e.value == null ? null : num(e.value, READINGS.has(e.kind) ? 3 : 0);
  const said = phrase(text, BY_KIND.get(e.kind) || [], READINGS.has(e.kind) && v != null ? { 1: v } : null);
  if (said) return said;
  const key = `d_${e.kind}`;
  if (v != null && t(key) !== key) return t(key, { v });
  return text;
}
/** Meter names by key, for the event log (events carry keys: a name can change). */
const names = new Map();
/** Events whose value is a reading; the others count pulses (whole numbers). */
const READINGS = new Set(['correction', 'replacement']);
const eventRow = (e) => h('tr', { class: `ev-${e.kind}` },
  h('td', { class: 'nw' }, when(e.at)),
  h('td', null, t(`e_${e.kind}`)),
  h('td', { 'data-where': '' }, [e.module, e.meter && (names.get(e.meter) || e.meter)].filter(Boolean).join(' · ')),
  h('td', { class: 'n', 'data-value': e.value ?? '' }, e.value == null ? '' : num(e.value, READINGS.has(e.kind) ? 3 : 0)),
  h('td', { class: 'detail', title: e.detail || '' }, detail(e)));

export async function mount(main) {
  const [health, initial, meters] = await Promise.all([api('health'), api('events?limit=100'), api('meters').catch(() => [])]);
  for (const m of meters) names.set(m.key, m.name);
  const mods = h('div', { class: 'grid modules' });
  const paint = (doc) => mods.replaceChildren(...(doc.modules || []).map(moduleCard), ...(doc.mqtt ? [mqttCard(doc.mqtt, doc.at)] : []));
  paint(health);
  const f = { kind: '', module: '' };
  const body = h('tbody');
  const showEvents = (list) => body.replaceChildren(...(list.length ? list.map(eventRow) : [h('tr', null, h('td', { colspan: 5, class: 'muted' }, t('noevents')))]));
  showEvents(initial);
  const reload = async () => showEvents(await api(`events?${qs(Object.fromEntries(Object.entries({ ...f, limit: 100 }).filter(([, v]) => v)))}`));
  const kind = h('select', { onchange: (e) => { f.kind = e.target.value; reload(); } },
    h('option', { value: '' }, t('allkinds')), EVENTS.map((k) => h('option', { value: k }, t(`e_${k}`))));
  const mod = h('select', { onchange: (e) => { f.module = e.target.value; reload(); } },
    h('option', { value: '' }, t('allmodules')), (health.modules || []).map((m) => h('option', { value: m.name }, m.name)));
  main.replaceChildren(h('h1', { class: 'sr-only' }, t('device')), mods,
    h('section', { class: 'card events' }, h('h2', null, t('events')),
      h('div', { class: 'ctl' }, field(t('kind'), kind), field(t('module'), mod)),
      h('div', { class: 'scroll' }, h('table', null,
        h('thead', null, h('tr', null, [t('time'), t('kind'), t('module'), t('value'), t('detail')].map((x) => h('th', { scope: 'col' }, x)))),
        body))));
  return listen((type, d) => {
    if (type === 'health' && d) paint(d);
    if (type === 'update' && d?.events?.length) {
      const fresh = d.events.filter((e) => (!f.kind || e.kind === f.kind) && (!f.module || e.module === f.module));
      if (fresh.length) {
        body.querySelector('td[colspan]')?.parentElement.remove();
        body.prepend(...fresh.map(eventRow));
      }
    }
  });
}
