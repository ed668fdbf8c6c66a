/** Addresses: explicit and wildcard addresses with their destinations; search and paging in the page. */
import * as api from '../api.js';
import { h } from '../dom.js';
import { act, badge, button, confirm, dataTable, formDialog, rowMenu, section } from '../widgets.js';
import { cleanDestinations, destinationLabels, destinationNames, destinationsText } from './common.js';

const kinds = { domain: 'Address', wildcard: 'Wildcard', adduser: 'User', addgroup: 'Group' };

/** The address as people read it. */
export function addressText(a) {
  if (a.atype === 'domain') return `${a.local}@${a.domain}`;
  return `${a.local}@*`;
}

/** The identifying fields of an address (what alter/remove need). */
const key = (a) => (a.atype === 'domain' ? { local: a.local, atype: a.atype, domain: a.domain } : { local: a.local, atype: a.atype });

async function addressForm(ctx, existing) {
  // Asked when the dialog opens, not with the list: the list of 10,000 rows comes first.
  const [names, domainList] = await Promise.all([destinationNames(), api.run('list-domains', {})]);
  const domains = domainList.map((d) => d.domain);
  const values = existing
    ? { ...key(existing), destinations: cleanDestinations(existing.destinations), internal: !!existing.internal, description: existing.description || '' }
    : { atype: 'domain', domain: domains[0], destinations: [{ dtype: 'user' }], internal: false };
  return formDialog({
    title: existing ? `Edit ${addressText(existing)}` : 'Create address',
    action: existing ? 'alter-address' : 'add-address',
    submitLabel: existing ? 'Save' : 'Create address',
    wide: true,
    order: ['local', 'atype', 'domain', 'destinations', 'description', 'internal'],
    values,
    labels: {
      local: 'Name (local part)', atype: 'Kind', domain: 'Domain', destinations: 'Destinations',
      'atype=domain': 'One domain', 'atype=wildcard': 'Wildcard: every domain',
      internal: 'Internal: refuse messages from outside', description: 'Description',
      ...destinationLabels('destinations.*'),
    },
    choices: { domain: domains },
    showIf: { domain: (v) => v.atype === 'domain' },
    readonly: existing ? ['local', 'atype', 'domain'] : [],
    omit: ['destinations.*.ui_name'],
    itemLabels: { destinations: 'destination' },
    suggest: { 'destinations.*.name': names },
    transform: (v) => {
      const out = { ...v, destinations: cleanDestinations(v.destinations) };
      if (out.atype !== 'domain') delete out.domain;
      if (!out.description) delete out.description;
      return out;
    },
    onDone: () => ctx.refresh(),
  });
}

export async function render(ctx) {
  const listing = await api.run('list-addresses', {});
  const addresses = listing.addresses || [];
  ctx.buttons.append(button('Create address', () => addressForm(ctx), 'primary', { id: 'add-address' }));
  const table = dataTable({
    id: 'addresses', caption: 'Addresses', rows: addresses,
    columns: [
      { label: 'Address', value: addressText },
      { label: 'Kind', value: (a) => kinds[a.atype] || a.atype },
      { label: 'Destinations', value: (a) => destinationsText(a.destinations) },
      { label: 'Internal', value: (a) => (a.internal ? 'internal' : ''), render: (a) => (a.internal ? badge(true, 'Internal') : '') },
      { label: 'Description', value: (a) => a.description || '' },
    ],
    actions: (a) => rowMenu(addressText(a), [
      { label: 'Edit', onClick: () => addressForm(ctx, a) },
      { label: a.internal ? 'Set as public' : 'Set as internal', onClick: async () => {
        if ((await act('alter-address', { ...key(a), internal: !a.internal }, `${addressText(a)} is now ${a.internal ? 'public' : 'internal'}`)) !== undefined) ctx.refresh();
      } },
      { label: 'Delete', danger: true, hidden: a.delete_forbidden || a.atype === 'adduser' || a.atype === 'addgroup', onClick: async () => {
        if (!(await confirm(`Delete the address ${addressText(a)}?`))) return;
        if ((await act('remove-address', key(a), `${addressText(a)} deleted`)) !== undefined) ctx.refresh();
      } },
    ]),
  });
  const automatic = [
    listing.adduser_domains?.length ? h('p', { class: 'hint' }, `Every user also has an address in: ${listing.adduser_domains.join(', ')}.`) : null,
    listing.addgroup_domains?.length ? h('p', { class: 'hint' }, `Every group also has an address in: ${listing.addgroup_domains.join(', ')}.`) : null,
  ];
  return section('Addresses', [], automatic, table.element);
}
