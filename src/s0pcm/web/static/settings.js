// Settings (login required): meters, reading corrections and replacements, tariffs, pulse
// thresholds (pending until the module's start-up header confirms them), the MQTT link, API
// tokens.
import { h, t, api, qs, listen, field, msg, say, explain, state, session, loginForm, num, when, ymd, date, zoned, tint, KINDS } from './lib.js';
import { mqttFacts } from './device.js';

const again = () => dispatchEvent(new HashChangeEvent('hashchange'));
const section = (key, ...kids) => h('section', { class: 'card', 'aria-labelledby': `s-${key}` }, h('h2', { id: `s-${key}` }, t(key)), ...kids);
const number = (value, attrs) => h('input', { type: 'number', step: 'any', value: value ?? '', ...attrs });
const fail = (out, e) => say(out, explain(e), true);

/** A form that runs send() and reports "saved" or the error in its own status line. */
function form(attrs, kids, send, label = t('save')) {
  const out = msg();
  const f = h('form', {
    ...attrs,
    async onsubmit(ev) {
      ev.preventDefault();
      const b = f.querySelector('button:not([type=button])');
      b.disabled = true;
      try { const r = await send(); say(out, typeof r === 'string' ? r : t('saved')); } catch (e) { fail(out, e); } finally { b.disabled = false; }
    },
  }, kids, h('div', { class: 'row' }, h('button', { class: 'primary' }, label), out));
  return f;
}

function meterForms(meters) {
  return section('meters', h('p', { class: 'muted' }, t('metershelp')), meters.map((m) => {
    const name = h('input', { value: m.name, required: true });
    const kind = h('select', null, KINDS.map((k) => h('option', { value: k, selected: m.kind === k }, t(k))));
    const ppu = number(m.pulses_per_unit, { min: 0.000001, required: true });
    const on = h('input', { type: 'checkbox', checked: m.enabled !== false });
    // Consumption, or production: a solar inverter or a grid-return meter, netted and priced apart.
    const dir = h('select', { 'data-direction': '' }, ['consumption', 'production'].map((d) => h('option', { value: d, selected: (m.direction || 'consumption') === d }, t(d))));
    return form({ class: 'meterset', 'data-meter': m.key }, [
      h('h3', null, `${m.module} M${m.register}`, h('small', { class: 'muted' }, ` ${m.key}`)),
      h('div', { class: 'fields' }, field(t('name'), name), field(t('kind'), kind), field(t('direction'), dir), field(`${t('ppu')} (${m.unit || '–'})`, ppu),
        h('label', { class: 'check' }, on, t('enabled'))),
    ], () => api(`meters/${encodeURIComponent(m.key)}`, 'PUT', { name: name.value, kind: kind.value, direction: dir.value, pulses_per_unit: +ppu.value, enabled: on.checked }));
  }));
}

function readingForm(meters) {
  const which = h('select', { onchange: () => { armed = null; warn.hidden = true; showPast(); } }, meters.map((m) => h('option', { value: m.key }, `${m.name} (${m.reading == null ? '–' : num(m.reading, 3)} ${m.unit})`)));
  const value = number('', { required: true });
  const at = h('input', { type: 'datetime-local' });
  const ppu = number('', { min: 0.000001 });
  const ppuField = h('div', { class: 'fields', hidden: true }, field(t('newppu'), ppu));
  const replaced = h('input', { type: 'checkbox', onchange: () => { ppuField.hidden = !replaced.checked; } });
  // A reading far from the one now (a digit dropped or doubled) is asked about once first.
  const warn = h('p', { class: 'note', role: 'alert', hidden: true, 'data-odd-reading': '' });
  let armed = null;
  const past = h('div', { 'data-readings': '' });
  async function showPast() {
    const m = meters.find((x) => x.key === which.value);
    if (!m) return;
    const list = await api(`meters/${encodeURIComponent(m.key)}/readings`).catch(() => []);
    past.replaceChildren(!list.length ? h('p', { class: 'muted' }, t('noreadings')) : h('div', { class: 'scroll' }, h('table', { class: 'data' },
      h('caption', null, t('pastreadings')),
      h('thead', null, h('tr', null, [t('at'), t('kind'), t('reading'), ''].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, list.slice().reverse().map((r) => h('tr', { 'data-reading-at': r.at, 'data-kind': r.kind },
        h('td', { class: 'nw' }, when(r.at)), h('td', null, t(`a_${r.kind}`)), h('td', { class: 'n' }, `${num(r.reading, 3)} ${m.unit}`),
        h('td', null, r.undoable ? h('button', { type: 'button', 'data-undo': '', onclick: async (ev) => {
          ev.target.disabled = true;
          try { await api(`meters/${encodeURIComponent(m.key)}/reading?${qs({ at: r.at })}`, 'DELETE'); await refreshMeter(m); showPast(); } catch (e) { ev.target.disabled = false; say(warn, explain(e), true); warn.hidden = false; }
        } }, t('undo')) : '')))))));
  }
  async function refreshMeter(m) {
    const fresh = await api(`meters/${encodeURIComponent(m.key)}`).catch(() => null);
    if (fresh) { Object.assign(m, fresh); which.selectedOptions[0].textContent = `${m.name} (${m.reading == null ? '–' : num(m.reading, 3)} ${m.unit})`; }
  }
  showPast();
  return section('setreading', h('p', { class: 'muted' }, t('readinghelp')), form({ 'data-reading-form': '' }, [
    h('div', { class: 'fields' }, field(t('meter'), which), field(t('newreading'), value), field(t('at'), at)),
    h('label', { class: 'check' }, replaced, t('replaced')), ppuField, warn,
  ], async () => {
    const m = meters.find((x) => x.key === which.value);
    const body = { reading: +value.value };
    const cur = m?.reading;
    const odd = !replaced.checked && !at.value && cur > 0 && (body.reading < cur * 0.9 || body.reading > cur * 2);
    const key = `${which.value}:${body.reading}`;
    if (odd && armed !== key) {
      armed = key;
      warn.textContent = t('oddreading', { r: `${num(body.reading, 3)} ${m.unit}`, c: `${num(cur, 3)} ${m.unit}` });
      warn.hidden = false;
      return t('confirmfirst');
    }
    armed = null;
    warn.hidden = true;
    if (at.value) body.at = zoned(at.value);
    if (replaced.checked) { body.replaced = true; if (ppu.value) body.pulses_per_unit = +ppu.value; }
    const r = await api(`meters/${encodeURIComponent(which.value)}/reading`, 'POST', body);
    if (m) await refreshMeter(m);
    showPast();
    return r;
  }), past);
}

// Tariff dates are local dates (YYYY-MM-DD), valid_to inclusive and null for open-ended.
const toDay = (v) => (v ? String(v).slice(0, 10) : '');
const fromDay = (s) => s || null;
// Weekday names in the language chosen now (not at load: switching language repaints). 0 = Monday.
const week = () => [0, 1, 2, 3, 4, 5, 6].map((i) => date(new Date(2024, 0, 1 + i) / 1000, { weekday: 'short' }));

/** The three periods of the common Dutch contract: peak on weekdays 07:00-23:00, off-peak the
 * rest of the week. */
const peakOffPeak = (peak, off) => [
  { name: t('peak'), days: [0, 1, 2, 3, 4], start: '07:00', end: '23:00', price: peak },
  { name: t('offpeak'), days: [0, 1, 2, 3, 4], start: '23:00', end: '07:00', price: off },
  { name: t('offpeak'), days: [5, 6], start: '00:00', end: '24:00', price: off },
];

/** "tariffs[0].periods[1].price: ..." as the editor shows it: the tariff and period by name. */
function where(doc, text) {
  return String(text).replace(/tariffs\[(\d+)\](?:\.periods\[(\d+)\])?(?:\.(\w+))?/g, (all, i, j, key) => {
    const tf = doc.tariffs[+i];
    if (!tf) return all;
    const pd = j == null ? null : tf.periods?.[+j];
    return [`${tariffName(tf)} ${t('from').toLowerCase()} ${toDay(tf.valid_from)}`, pd && `${t('period').toLowerCase()} ${+j + 1} (${pd.name})`, key && t(FIELD[key] || key).toLowerCase()].filter(Boolean).join(', ');
  });
}
/** A tariff by its kind, and "feed-in" for what production earns. */
const tariffName = (tf) => (tf.direction === 'production' ? `${t(tf.kind)} (${t('feedin').toLowerCase()})` : t(tf.kind));
const FIELD = { direction: 'appliesto', valid_from: 'from', valid_to: 'until', fixed_per_day: 'perday', price: 'price', days: 'days', start: 'start', end: 'end', name: 'name', kind: 'kind', periods: 'periods' };

function tariffEditor(doc, meters) {
  const box = h('div');
  // A new tariff holds from the day logging began, so the whole history is priced.
  const since = Math.min(...meters.map((m) => m.since ?? Infinity));
  const first = Number.isFinite(since) ? ymd(new Date(since * 1000)) : ymd(new Date());
  const bind = (obj, key, input, conv = (x) => x, again = false) => { input.addEventListener('change', () => { obj[key] = conv(input.value); if (again) paint(); }); return input; };
  function paint() {
    box.replaceChildren(...[
      h('div', { class: 'fields' }, field(t('currency'), bind(doc, 'currency', h('input', { value: doc.currency || 'EUR', size: 4, maxlength: 3, pattern: '[A-Z]{3}', required: true })))),
      doc.tariffs.map((tf, i) => h('fieldset', { class: `tariff k-${tint(tf)}` },
        h('legend', null, `${tariffName(tf)} ${toDay(tf.valid_from)}`),
        h('div', { class: 'fields' },
          field(t('kind'), bind(tf, 'kind', h('select', null, KINDS.map((k) => h('option', { value: k, selected: tf.kind === k }, t(k)))), undefined, true)),
          field(t('appliesto'), bind(tf, 'direction', h('select', { 'data-tariff-direction': '' }, [['consumption', 'consumption'], ['production', 'feedin']].map(([v, k]) => h('option', { value: v, selected: (tf.direction || 'consumption') === v }, t(k)))), undefined, true)),
          field(t('from'), bind(tf, 'valid_from', h('input', { type: 'date', value: toDay(tf.valid_from), required: true }), fromDay, true)),
          field(t('until'), bind(tf, 'valid_to', h('input', { type: 'date', value: toDay(tf.valid_to) }), fromDay)),
          field(`${t('perday')} (${doc.currency || ''})`, bind(tf, 'fixed_per_day', number(tf.fixed_per_day ?? 0, { min: 0 }), Number))),
        h('div', { class: 'scroll' }, h('table', { class: 'periods' },
          h('caption', { class: 'sr-only' }, t('periods')),
          h('thead', null, h('tr', null, [t('name'), t('days'), t('start'), t('end'), t('price'), ''].map((x) => h('th', { scope: 'col' }, x)))),
          h('tbody', null, tf.periods.map((pd, j) => h('tr', null,
            h('td', null, bind(pd, 'name', h('input', { value: pd.name ?? '', size: 8, 'aria-label': t('name') }))),
            h('td', { class: 'days' }, week().map((w, d) => h('label', { class: 'day' }, h('input', {
              type: 'checkbox', checked: pd.days?.includes(d),
              onchange: (e) => { pd.days = [...new Set([...(pd.days || []), d])].filter((x) => x !== d || e.target.checked).sort(); },
            }), w))),
            h('td', null, bind(pd, 'start', h('input', { value: pd.start ?? '00:00', size: 5, pattern: '([01]\\d|2[0-4]):[0-5]\\d', 'aria-label': t('start') }))),
            h('td', null, bind(pd, 'end', h('input', { value: pd.end ?? '24:00', size: 5, pattern: '([01]\\d|2[0-4]):[0-5]\\d', 'aria-label': t('end') }))),
            h('td', null, bind(pd, 'price', number(pd.price ?? 0, { min: 0, size: 8, 'aria-label': t('price') }), Number)),
            h('td', null, h('button', { type: 'button', onclick: () => { tf.periods.splice(j, 1); paint(); } }, t('remove')))))))),
        h('div', { class: 'row' },
          h('button', { type: 'button', onclick: () => { tf.periods.push({ name: t('normal').toLowerCase(), days: [0, 1, 2, 3, 4, 5, 6], start: '00:00', end: '24:00', price: 0 }); paint(); } }, t('addperiod')),
          h('button', { type: 'button', 'data-peak-offpeak': '', onclick: () => { const p = tf.periods.map((x) => x.price || 0); tf.periods = peakOffPeak(Math.max(0, ...p), Math.min(...p, Infinity) === Infinity ? 0 : Math.min(...p)); paint(); } }, t('peakoffpeak')),
          h('button', { type: 'button', onclick: () => { doc.tariffs.splice(i, 1); paint(); } }, t('remove'))))),
      h('button', {
        type: 'button',
        onclick: () => {
          doc.tariffs.push({ kind: 'electricity', direction: 'consumption', valid_from: first, valid_to: null, fixed_per_day: 0, periods: [{ name: t('normal').toLowerCase(), days: [0, 1, 2, 3, 4, 5, 6], start: '00:00', end: '24:00', price: 0 }] });
          paint();
        },
      }, t('add'))].flat());
  }
  paint();
  return section('tariffs', Number.isFinite(since) ? h('p', { class: 'muted', 'data-tariff-hint': '' }, t('tariffhint', { t: date(since, { dateStyle: 'long' }) })) : '',
    form({ 'data-tariffs': '' }, [box], async () => {
      try {
        await api('tariffs', 'PUT', doc);
      } catch (e) {
        if (e.detail) e.detail = where(doc, typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail));
        e.message = where(doc, e.message);
        throw e;
      }
      state.currency = doc.currency;
    }));
}

const THRESH = ['thresholds_sent', 'thresholds_confirmed', 'thresholds_refused'];

function thresholdForms(health, forms) {
  return section('thresholds', h('p', { class: 'muted' }, t('thhelp')), (health.modules || []).map((m) => {
    const n = m.thresholds?.length || (Math.max(0, ...(m.meters || []).map((x) => x.register)) > 2 ? 5 : 2);
    const inputs = Array.from({ length: n }, (_, i) =>
      h('input', { type: 'number', min: 1, max: 1000, step: 1, value: m.thresholds?.[i] ?? 30, 'data-register': i + 1 }));
    const st = h('p', { class: 'thstate', 'data-threshold-state': 'none', role: 'status', 'aria-live': 'polite' });
    const info = { m, last: null };
    info.show = () => {
      const p = info.m.thresholds_pending;
      const l = info.last;
      const s = p ? 'pending' : l?.kind === 'thresholds_confirmed' ? 'confirmed' : l?.kind === 'thresholds_refused' ? 'refused' : 'none';
      st.dataset.thresholdState = s;
      st.className = `thstate ${s}`;
      st.textContent = s === 'pending' ? t('thpending', { c: p }) + (l?.kind === 'thresholds_sent' ? ` (${t('e_thresholds_sent')} ${when(l.at)})` : '')
        : s === 'none' ? '' : `${t(s === 'confirmed' ? 'thconfirmed' : 'threfused', { c: l.detail })} ${when(l.at)}`;
      if (!p) inputs.forEach((x, i) => { if (document.activeElement !== x && info.m.thresholds) x.value = info.m.thresholds[i]; });
    };
    info.lastEvent = async () => {
      const got = await api(`events?${qs({ module: m.name, kind: THRESH.join(), limit: 1 })}`).catch(() => []);
      info.last = got[0] || null;
      info.show();
    };
    forms.set(m.name, info);
    info.lastEvent();
    return form({ class: 'thresholds', 'data-module': m.name }, [
      h('h3', null, m.name, h('small', { class: 'muted' }, ` ${m.firmware || ''} ${m.thresholds ? `${m.thresholds.join('/')} ms` : ''}`)),
      h('div', { class: 'fields' }, inputs.map((x, i) => field(`${t('register')} ${i + 1} (ms)`, x))), st,
    ], async () => {
      const now = info.m.thresholds || [];
      const cmd = inputs.map((x, i) => (+x.value !== now[i] ? `T${i + 1}=${+x.value};` : '')).join('');
      if (!cmd) return t('unchanged');
      await api(`modules/${encodeURIComponent(m.name)}/thresholds`, 'POST', { command: cmd });
      info.m.thresholds_pending = cmd;
      info.show();
      return `${t('pending')}: ${cmd}`;
    });
  }));
}

function tokenForm() {
  const name = h('input', { required: true, value: 'home-assistant' });
  const days = h('select', null, [['', t('never')], [30, '30'], [90, '90'], [365, '365']].map(([v, l]) => h('option', { value: v }, l)));
  const shown = h('output', { class: 'token' });
  const list = h('ul', { class: 'tokens', 'data-tokens': '' });
  const out = msg();
  const refresh = async () => {
    const tokens = await api('tokens').catch(() => []);
    list.replaceChildren(...(tokens.length ? tokens.map((k) => h('li', { 'data-token': k.id },
      h('span', null, h('b', null, k.name), ' ', h('code', { class: 'muted' }, k.id)),
      h('small', { class: k.expired ? 'bad' : 'muted' }, k.expired ? t('expired') : k.expires ? `${t('expires')} ${when(k.expires)}` : t('noexpiry')),
      h('button', { type: 'button', 'data-revoke': k.id, async onclick() {
        if (!confirm(t('revokeq', { n: k.name }))) return;
        try { await api(`tokens/${encodeURIComponent(k.id)}`, 'DELETE'); say(out, t('revoked', { n: k.name })); } catch (e) { fail(out, e); }
        refresh();
      } }, t('revoke')))) : [h('li', { class: 'muted' }, t('notokens'))]));
  };
  refresh();
  return section('tokens', h('p', { class: 'muted' }, t('tokenhelp')), list, out,
    form({ 'data-token-form': '' }, [h('div', { class: 'fields' }, field(t('name'), name), field(t('expiresin'), days)), shown], async () => {
      const r = await api('tokens', 'POST', days.value ? { name: name.value, days: +days.value } : { name: name.value });
      shown.replaceChildren(t('tokenonce'), ' ', h('code', null, r.token));
      refresh();
      return ' ';
    }, t('create')));
}

export async function mount(main) {
  if (!state.loggedIn && !(await session())) {
    main.replaceChildren(h('h1', { class: 'sr-only' }, t('settings')), loginForm(t('loginset'), again));
    return null;
  }
  const [meters, tariffs, health] = await Promise.all([api('meters'), api('tariffs').catch(() => ({ currency: 'EUR', tariffs: [] })), api('health')]);
  tariffs.tariffs ||= [];
  const forms = new Map();
  const mqttBox = h('div', { 'data-mqtt': '' });
  main.replaceChildren(
    h('div', { class: 'head' }, h('h1', null, t('settings')),
      h('button', { type: 'button', 'data-logout': '', onclick: async () => { await api('logout', 'POST').catch(() => null); state.loggedIn = false; state.csrf = null; again(); } }, t('logout'))),
    meterForms(meters), readingForm(meters), tariffEditor(tariffs, meters), thresholdForms(health, forms), section('mqtt', mqttBox), tokenForm(),
    section('backup', h('p', { class: 'muted' }, t('backuphelp')), h('p', null, h('a', { class: 'button', href: 'api/backup', download: '', 'data-backup': '' }, t('backupget')))));
  const paintMqtt = (doc) => mqttBox.replaceChildren(...(doc.mqtt ? [h('p', { class: 'muted' }, t('mqtthelp')), ...mqttFacts(doc.mqtt, doc.at)] : [h('p', { class: 'muted' }, t('nomqtt'))]));
  paintMqtt(health);

  const apply = (doc) => {
    for (const m of doc.modules || []) {
      const f = forms.get(m.name);
      if (!f) continue;
      const was = f.m.thresholds_pending;
      f.m = m;
      if (was && !m.thresholds_pending) f.lastEvent(); else f.show();
    }
  };
  // While a threshold change is pending, ask for the health every 2 s (the stream sends it
  // every 10 s); threshold events arrive with the stream's updates.
  const timer = setInterval(async () => {
    if ([...forms.values()].some((f) => f.m.thresholds_pending)) apply(await api('health').catch(() => ({})));
  }, 2000);
  const stop = listen((type, d) => {
    if (type === 'health' && d) { apply(d); paintMqtt(d); }
    for (const e of (type === 'update' && d?.events) || []) {
      const f = THRESH.includes(e.kind) && forms.get(e.module);
      if (f) { f.last = e; f.show(); }
    }
  });
  return () => { clearInterval(timer); stop(); };
}
