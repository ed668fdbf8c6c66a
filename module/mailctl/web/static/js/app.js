/**
 * The single page app: login, navigation built from ui-manifest.json routes, one module per
 * page under pages/ (named after the route path). The server answers index.html on any
 * non-/api path, so every page has its own URL (/domains, /queue...).
 */
import * as api from './api.js';
import { h, replace } from './dom.js';
import { toast } from './widgets.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const navToggle = document.getElementById('nav-toggle');
const logoutButton = document.getElementById('logout');
const whoami = document.getElementById('whoami');

const state = { routes: [], configured: true, user: null };

/** The route path of the current URL ('' for /). */
const currentPath = () => location.pathname.replace(/^\/+|\/+$/g, '').split('/')[0];

export function navigate(path, { replaceState = false } = {}) {
  const url = `/${path}`;
  if (replaceState) history.replaceState({}, '', url);
  else if (location.pathname !== url) history.pushState({}, '', url);
  return show();
}

function drawNav() {
  const here = currentPath();
  const routes = state.routes.filter((r) => r.path !== 'wizard' || !state.configured);
  replace(nav, h('ul', {}, routes.map((r) => h('li', {},
    h('a', { href: `/${r.path}`, 'data-link': '', 'aria-current': r.path === here ? 'page' : null }, r.title)))));
}

function showLogin(message = '') {
  nav.hidden = true;
  navToggle.hidden = true;
  logoutButton.hidden = true;
  whoami.textContent = '';
  document.title = 'Log in - Mail';
  const error = h('p', { class: 'error', id: 'login-error', role: 'alert', hidden: !message }, message);
  const user = h('input', { id: 'login-username', name: 'username', autocomplete: 'username', value: 'admin', required: true });
  const pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'card login', id: 'login-form', novalidate: true },
    h('h1', {}, 'Mail administration'),
    h('div', { class: 'field' }, h('label', { for: user.id }, 'User name'), user),
    h('div', { class: 'field' }, h('label', { for: pass.id }, 'Password'), pass),
    error, h('div', { class: 'form-buttons' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      await api.login(user.value.trim(), pass.value);
      await start();
    } catch (e) {
      error.hidden = false;
      error.textContent = e.status === 401 ? 'Wrong user name or password.'
        : e.status === 429 ? 'Too many failed logins from this address: wait a while and try again.'
          : `Login failed: ${e.message}`;
      pass.select();
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, form);
  (user.value ? pass : user).focus();
}

let rendering = 0;
/** Draw the page of the current URL. */
async function show() {
  const path = currentPath() || (state.configured ? 'status' : 'wizard');
  const route = state.routes.find((r) => r.path === path);
  drawNav();
  nav.classList.remove('open');
  navToggle.setAttribute('aria-expanded', 'false');
  const ticket = ++rendering;
  if (!route) {
    document.title = 'Not found - Mail';
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '/status', 'data-link': '' }, 'Go to Status')));
    return;
  }
  document.title = `${route.title} - Mail`;
  const content = h('div', { class: 'page', id: `page-${route.path}` });
  replace(main, h('div', { class: 'page-head' }, h('h1', {}, route.title), h('div', { class: 'page-buttons', id: 'page-buttons' })), content);
  content.append(h('p', { class: 'loading' }, 'Loading…'));
  try {
    const page = await import(`./pages/${route.path}.js`).catch(() => import(`./pages/${route.path}.js?retry`));
    const ctx = {
      route, navigate, state,
      buttons: main.querySelector('#page-buttons'),
      refresh: () => (ticket === rendering ? show() : undefined),
    };
    const body = await page.render(ctx);
    if (ticket !== rendering) return;
    replace(content, body);
    main.dataset.ready = route.path;
    performance.mark(`ready:${route.path}`); // read by bench/ui_paint.py
    main.focus({ preventScroll: true });
  } catch (error) {
    if (ticket !== rendering) return;
    if (error.status === 401) return;
    replace(content, h('p', { class: 'error', role: 'alert' }, `This page could not be loaded: ${error.message}`));
  }
}

/** After login (or with a live session): read the manifest and draw the app. */
async function start() {
  const session = await api.session();
  if (!session) return showLogin();
  state.user = session.username;
  whoami.textContent = session.username;
  logoutButton.hidden = false;
  nav.hidden = false;
  navToggle.hidden = false;
  const manifest = await api.manifest();
  state.routes = manifest.routes || [];
  try {
    state.configured = (await api.run('get-configuration', {})).configured !== false;
  } catch {
    state.configured = true;
  }
  if (!state.configured && !currentPath()) return navigate('wizard', { replaceState: true });
  return show();
}

api.hooks.onUnauthorized = () => showLogin('Your session has ended: log in again.');

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-link]');
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  navigate(link.getAttribute('href').replace(/^\//, ''));
});
window.addEventListener('popstate', () => show());
navToggle.addEventListener('click', () => {
  const open = nav.classList.toggle('open');
  navToggle.setAttribute('aria-expanded', String(open));
});
logoutButton.addEventListener('click', async () => {
  await api.logout().catch(() => {});
  showLogin();
});

start().catch((error) => {
  replace(main, h('p', { class: 'error', role: 'alert' }, `The server did not answer: ${error.message}`));
  toast(error.message, 'error');
});
