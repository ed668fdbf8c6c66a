/** Status: every container's state and health, the configuration and the usage counters. */
import * as api from '../api.js';
import { h, humanize } from '../dom.js';
import { badge, button, section } from '../widgets.js';

const good = (value) => ['running', 'healthy', 'up'].includes(String(value).toLowerCase());

function containersTable(containers) {
  const keys = [...new Set(containers.flatMap((c) => Object.keys(c)))].filter((k) => typeof containers.find((c) => k in c)[k] !== 'object');
  return h('div', { class: 'table-scroll' }, h('table', { class: 'data', id: 'containers' },
    h('caption', { class: 'sr-only' }, 'Containers'),
    h('thead', {}, h('tr', {}, keys.map((k) => h('th', { scope: 'col' }, humanize(k))))),
    h('tbody', {}, containers.map((c) => h('tr', {}, keys.map((k) => h('td', { 'data-label': humanize(k) },
      ['state', 'health'].includes(k) ? h('span', { class: `badge ${good(c[k]) ? 'on' : 'off'}` }, String(c[k] ?? '—')) : String(c[k] ?? '—'))))))));
}

function counters(facts) {
  const items = Object.entries(facts).filter(([k]) => k !== 'features');
  const features = Object.entries(facts.features || {});
  return [
    h('dl', { class: 'counters', id: 'counters' }, items.map(([k, v]) => h('div', {}, h('dt', {}, humanize(k)), h('dd', {}, String(v))))),
    h('h3', {}, 'Features'),
    h('dl', { class: 'facts', id: 'features' }, features.map(([k, v]) => h('div', {}, h('dt', {}, humanize(k)),
      h('dd', {}, typeof v === 'boolean' ? badge(v, 'On', 'Off') : String(v))))),
  ];
}

export async function render(ctx) {
  const [status, config, facts, manifest, version] = await Promise.all([
    api.status(), api.run('get-configuration', {}), api.run('get-facts', {}), api.manifest(), api.version()]);
  const containers = Array.isArray(status) ? status : status.containers || [];
  ctx.buttons.append(button('Refresh', () => ctx.refresh()));
  const userDomain = config.user_domain && typeof config.user_domain === 'object' ? config.user_domain.name : config.user_domain;
  const extra = Array.isArray(status) ? {} : Object.fromEntries(Object.entries(status).filter(([k, v]) => k !== 'containers' && typeof v !== 'object'));
  return h('div', {},
    section('Containers', [], containersTable(containers)),
    section('Configuration', [],
      h('dl', { class: 'facts', id: 'configuration' },
        h('div', {}, h('dt', {}, 'Mail server hostname'), h('dd', {}, config.hostname || '—')),
        h('div', {}, h('dt', {}, 'Primary mail domain'), h('dd', {}, config.mail_domain || '—')),
        h('div', {}, h('dt', {}, 'User domain'), h('dd', {}, userDomain || '—')),
        h('div', {}, h('dt', {}, 'Configured'), h('dd', {}, badge(config.configured))),
        h('div', {}, h('dt', {}, 'Module version'), h('dd', { id: 'module-version' }, manifest.version || version || '—')),
        h('div', {}, h('dt', {}, 'Images'), h('dd', { title: (manifest.images || []).join(', ') }, `${(manifest.images || []).length} images, tag ${version || '?'}`)),
        Object.entries(extra).map(([k, v]) => h('div', {}, h('dt', {}, humanize(k)), h('dd', {}, String(v)))))),
    section('Counters', [], counters(facts)));
}
