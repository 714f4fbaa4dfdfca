// The shell: language, theme, navigation and hash routes (#/live, #/history?...); each page is
// a module loaded on first visit, with mount(main, params) returning its clean-up.
import { h, t, state, session, loginForm, ApiError, prefetch, dropPrefetched } from './lib.js';

const PAGES = ['live', 'history', 'costs', 'device', 'settings'];
const main = document.getElementById('main');
const root = document.documentElement;
let cleanup = null;
let seq = 0;

function setLang(lang) {
  state.lang = lang;
  root.lang = lang;
  document.getElementById('lang').value = lang;
  for (const e of document.querySelectorAll('[data-t]')) e.textContent = t(e.dataset.t);
  for (const e of document.querySelectorAll('[data-tl]')) e.setAttribute('aria-label', t(e.dataset.tl));
}

const dark = matchMedia('(prefers-color-scheme: dark)');
function theme() {
  const saved = localStorage.getItem('theme');
  const isDark = saved ? saved === 'dark' : dark.matches;
  if (saved) root.dataset.theme = saved; else delete root.dataset.theme;
  document.getElementById('theme').setAttribute('aria-pressed', String(isDark));
  return isDark;
}

/** The page the hash names (live when none) and its query. */
function route() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  return [PAGES.includes(path) ? path : 'live', query];
}

export async function render() {
  const my = ++seq;
  if (my > 1) dropPrefetched(); // another page, or the same after logging in: ask again
  const [name, query] = route();
  const params = Object.fromEntries(new URLSearchParams(query || ''));
  if (cleanup) { cleanup(); cleanup = null; }
  for (const a of document.querySelectorAll('nav a')) {
    if (a.hash === `#/${name}`) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.title = `${t(name)} · s0pcm`;
  main.dataset.page = name;
  delete main.dataset.ready;
  main.replaceChildren(h('p', { class: 'muted' }, t('loading')));
  try {
    const page = await import(`./${name}.js`);
    if (my !== seq) return;
    const done = await page.mount(main, params, () => my !== seq);
    if (my === seq) { cleanup = done || null; main.dataset.ready = name; performance.mark(`s0pcm:ready:${name}`); } else done?.();
  } catch (e) {
    if (my !== seq) return;
    if (e instanceof ApiError && e.status === 401) {
      state.loggedIn = false;
      main.replaceChildren(loginForm(t('loginread'), render));
      main.dataset.ready = 'login';
    } else {
      main.replaceChildren(h('p', { class: 'card bad', role: 'alert' }, t('failed', { e: e.message })));
      console.error(e);
    }
  }
}

// The browser's first language we speak, unless one was chosen here.
const browser = (navigator.languages || [navigator.language]).map((l) => l.slice(0, 2).toLowerCase());
setLang(localStorage.getItem('lang') || browser.find((l) => l === 'nl' || l === 'en') || 'en');
theme();
dark.addEventListener('change', () => { if (!localStorage.getItem('theme')) { theme(); render(); } });
document.getElementById('lang').addEventListener('change', (e) => {
  localStorage.setItem('lang', e.target.value);
  setLang(e.target.value);
  render();
});
document.getElementById('theme').addEventListener('click', () => {
  localStorage.setItem('theme', root.dataset.theme === 'dark' || (!root.dataset.theme && dark.matches) ? 'light' : 'dark');
  theme();
  render();
});
addEventListener('hashchange', () => { render(); main.focus({ preventScroll: true }); });
// The first page's module and the data most pages start with load while the session is asked
// for, not one after the other.
const FIRST_DATA = { live: ['meters', 'health'], history: ['meters', 'tariffs'], device: ['health'], settings: ['meters', 'tariffs', 'health'] };
const first = route()[0];
for (const path of FIRST_DATA[first] || []) prefetch(path);
Promise.all([session(), import(`./${first}.js`).catch(() => null)]).then(render);
