/** Settings: host name and user domain (first-configuration values), external LDAP user domains. */
import * as api from '../api.js';
import { h } from '../dom.js';
import { badge, dataTable, formCard, formDialog, section, button } from '../widgets.js';

export async function render(ctx) {
  const [config, userDomains] = await Promise.all([api.run('get-configuration', {}), api.run('list-user-domains', {})]);
  const domains = userDomains.domains || [];
  const current = config.user_domain && typeof config.user_domain === 'object' ? config.user_domain.name : config.user_domain;
  const ldapForm = (existing) => formDialog({
    title: existing ? `Edit user domain ${existing.name}` : 'Add external user domain', action: 'set-user-domain', wide: true,
    values: existing ? { name: existing.name, schema: existing.schema, url: existing.url, base_dn: existing.base_dn,
      bind_dn: existing.bind_dn || undefined, tls: existing.tls, tls_verify: existing.tls_verify } : { schema: 'rfc2307', tls: true, tls_verify: true },
    readonly: existing ? ['name'] : [],
    labels: { name: 'Name', schema: 'Schema', 'schema=rfc2307': 'RFC 2307 (OpenLDAP)', 'schema=ad': 'Active Directory', url: 'LDAP URL',
      base_dn: 'Base DN', bind_dn: 'Bind DN', bind_password: 'Bind password', tls: 'STARTTLS', tls_verify: 'Verify the server certificate' },
    hints: { bind_password: existing?.has_password ? 'A password is stored: leave empty to keep it.' : null },
    onDone: () => ctx.refresh(),
  });
  const table = dataTable({
    id: 'user-domains', caption: 'User domains', rows: domains,
    columns: [
      { label: 'Name', value: (d) => d.name, render: (d) => h('span', {}, d.name, d.name === current ? [' ', badge(true, 'In use')] : null) },
      { label: 'Location', value: (d) => (d.location === 'internal' ? 'embedded OpenLDAP' : 'external') },
      { label: 'Schema', value: (d) => d.schema },
      { label: 'URL', value: (d) => d.url },
      { label: 'Base DN', value: (d) => d.base_dn },
    ],
    actions: (d) => (d.location === 'external' ? button('Edit', () => ldapForm(d), 'secondary small') : null),
  });
  return h('div', {},
    await formCard({
      title: 'General', action: 'configure-module', submitLabel: 'Save',
      order: ['hostname', 'user_domain', 'mail_domain'],
      values: { hostname: config.hostname || undefined, user_domain: current || undefined },
      omit: ['mail_domain'],
      labels: { hostname: 'Mail server hostname', user_domain: 'User domain' },
      hints: {
        hostname: 'How the server names itself to other servers; use it in the A, PTR and MX records. Do not change it in production.',
        user_domain: 'Where users, groups and passwords come from. Mailboxes are kept if the domain changes.',
      },
      choices: { user_domain: domains.map((d) => ({ value: d.name, label: d.name })) },
      onDone: () => ctx.refresh(),
    }),
    section('User domains', [button('Add external user domain', () => ldapForm(), 'secondary', { id: 'add-user-domain' })], table.element),
    section('Other settings', [], h('ul', {},
      h('li', {}, h('a', { href: '/mailboxes', 'data-link': '' }, 'Mailboxes'), ': default quota, shared seen, spam folder and retention, master users'),
      h('li', {}, h('a', { href: '/queue', 'data-link': '' }, 'Queue'), ': maximal queue lifetime (Settings button)'),
      h('li', {}, h('a', { href: '/relay', 'data-link': '' }, 'Relay'), ': relay networks, sender/login match, always BCC'))));
}
