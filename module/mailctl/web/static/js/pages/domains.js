/** Domains: add, edit, remove, and the DKIM dialog with the TXT record to copy. */
import * as api from '../api.js';
import { h } from '../dom.js';
import { act, badge, button, confirm, dataTable, dialog, formDialog, rowMenu, section, toast } from '../widgets.js';
import { cleanDestinations, destinationLabels, destinationNames, destinationText } from './common.js';

const labels = {
  domain: 'Name', description: 'Description',
  addusers: 'Add user addresses from user domain', addgroups: 'Add group addresses from user domain',
  catchall: 'Accept unknown recipients', bccaddr: 'Copy inbound messages to',
  ...destinationLabels('catchall'),
};
const hints = {
  catchall: 'Deliver mail for unknown addresses of this domain to this destination (only when user addresses are off).',
  bccaddr: 'A hidden copy of every inbound message goes to this address. Empty: off. Check your privacy laws.',
};

async function domainForm(ctx, existing) {
  const names = await destinationNames();
  const values = existing
    ? { ...existing, catchall: existing.catchall ? { dtype: existing.catchall.dtype, name: existing.catchall.name } : null }
    : { addusers: true, addgroups: false, catchall: null };
  delete values.dkim;
  return formDialog({
    title: existing ? `Edit domain ${existing.domain}` : 'Create domain',
    action: existing ? 'alter-domain' : 'add-domain',
    submitLabel: existing ? 'Save' : 'Create domain',
    order: ['domain', 'description', 'addusers', 'addgroups', 'catchall', 'bccaddr'],
    values, labels, hints,
    readonly: existing ? ['domain'] : [],
    omit: ['catchall.ui_name'],
    suggest: { 'catchall.name': names },
    transform: (v) => ({ ...v, catchall: v.catchall ? cleanDestinations([v.catchall])[0] ?? null : v.catchall }),
    onDone: () => ctx.refresh(),
  });
}

/** The DKIM dialog: state, switch, and the TXT record to publish. */
export async function dkimDialog(ctx, domain) {
  const dkim = await api.run('get-domain-dkim', { domain });
  const record = dkim.dkimRecordData || '';
  const area = h('textarea', { id: 'dkim-record', readonly: true, rows: 6, value: record });
  const name = `${dkim.selector || 'default'}._domainkey.${domain}`;
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(record);
    } catch {
      area.select();
      document.execCommand('copy');
    }
    toast('TXT record copied');
  };
  const enabled = dkim.enabled;
  const content = h('div', { class: 'dkim' },
    h('p', {}, 'Signing: ', badge(enabled, 'enabled', 'disabled'), ' — messages sent on ports 587 and 465 get a DKIM signature.'),
    record ? [
      h('p', {}, 'Add a TXT record to your public DNS with this key and data:'),
      h('div', { class: 'field' }, h('label', { for: 'dkim-name' }, 'Key (record name)'),
        h('input', { id: 'dkim-name', readonly: true, value: name })),
      h('div', { class: 'field' }, h('label', { for: area.id }, 'Data (RDATA)'), area),
      dkim.dkimFullRawRecord ? h('details', {}, h('summary', {}, 'Zone file line'), h('pre', { id: 'dkim-raw' }, dkim.dkimFullRawRecord)) : null,
      h('p', {}, button('Copy record data', copy, 'secondary', { id: 'dkim-copy' })),
    ] : h('p', { id: 'dkim-no-key' }, 'No key yet: enable DKIM to make one, then publish its TXT record.'));
  dialog({
    title: `DKIM for ${domain}`, id: 'dialog-dkim', content, wide: true,
    buttons: [
      { label: 'Close' },
      { label: enabled ? 'Disable DKIM' : 'Enable DKIM', kind: enabled ? 'danger' : 'primary', onClick: async () => {
        if (enabled && !(await confirm(`Stop signing messages of ${domain}?`, { action: 'Disable DKIM' }))) return false;
        const out = await act('set-domain-dkim', { domain, enabled: !enabled }, `DKIM ${enabled ? 'disabled' : 'enabled'} for ${domain}`);
        if (out === undefined) return false;
        ctx.refresh();
        if (!enabled) setTimeout(() => dkimDialog(ctx, domain), 0); // show the record to publish
        return true;
      } },
    ],
  });
}

export async function render(ctx) {
  const domains = await api.run('list-domains', {});
  ctx.buttons.append(button('Create domain', () => domainForm(ctx), 'primary', { id: 'add-domain' }));
  const table = dataTable({
    id: 'domains', caption: 'Domains', rows: domains,
    columns: [
      { label: 'Domain', value: (d) => d.domain },
      { label: 'Description', value: (d) => d.description },
      { label: 'User addresses', value: (d) => (d.addusers ? 'yes' : 'no'), render: (d) => badge(d.addusers) },
      { label: 'Group addresses', value: (d) => (d.addgroups ? 'yes' : 'no'), render: (d) => badge(d.addgroups) },
      { label: 'Catch-all', value: (d) => destinationText(d.catchall) || '—' },
      { label: 'Inbound copy', value: (d) => d.bccaddr || '—' },
      { label: 'DKIM', value: (d) => (d.dkim?.enabled ? 'on' : 'off'), render: (d) => badge(d.dkim?.enabled, 'On', 'Off') },
    ],
    actions: (d) => rowMenu(d.domain, [
      { label: 'Edit', onClick: () => domainForm(ctx, d) },
      { label: 'Configure DKIM', onClick: () => dkimDialog(ctx, d.domain) },
      { label: 'Delete', danger: true, onClick: async () => {
        if (!(await confirm(`Delete domain ${d.domain}? Mail already received is kept.`))) return;
        if ((await act('remove-domain', { domain: d.domain }, `Domain ${d.domain} deleted`)) !== undefined) ctx.refresh();
      } },
    ]),
    empty: 'No domain yet: create one.',
  });
  return section('Domains', [], table.element);
}
