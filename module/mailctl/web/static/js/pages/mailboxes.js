/** Mailboxes: user mailboxes (quota, spam retention, forward), public mailboxes with ACLs, master users, defaults. */
import * as api from '../api.js';
import { h } from '../dom.js';
import { act, badge, button, confirm, dataTable, formCard, formDialog, rowMenu, section } from '../widgets.js';
import { cleanDestinations, destinationLabels, destinationNames, destinationsText } from './common.js';

const mib = (n) => (n === null || n === undefined ? '—' : `${n} MiB`);

function quotaText(q) {
  if (!q || !q.limit) return q && q.value !== undefined ? `${mib(q.value)} used, no limit` : 'no limit';
  return `${mib(q.value ?? 0)} of ${mib(q.limit)} (${Math.round(q.percent ?? 0)}%)${q.custom ? ', custom' : ''}`;
}

async function mailboxForm(ctx, box) {
  const names = await destinationNames();
  return formDialog({
    title: `Edit mailbox ${box.user}`, action: 'alter-user-mailbox', wide: true,
    values: {
      user: box.user,
      quota: { custom: !!box.quota?.custom, limit: box.quota?.custom ? box.quota.limit ?? 0 : undefined },
      spam_retention: { custom: !!box.spam_retention?.custom, value: box.spam_retention?.custom ? box.spam_retention.value : undefined },
      forward: { destinations: cleanDestinations(box.forward?.destinations), keepcopy: box.forward?.keepcopy ?? true },
    },
    readonly: ['user'], omit: ['enabled', 'forward.destinations.*.ui_name'],
    order: ['user', 'quota', 'spam_retention', 'forward'],
    labels: {
      user: 'User', quota: 'Custom mailbox quota', 'quota.custom': 'Use a custom quota', 'quota.limit': 'Quota (MiB)',
      spam_retention: 'Custom spam retention', 'spam_retention.custom': 'Use a custom spam retention', 'spam_retention.value': 'Spam retention (days)',
      forward: 'Forward messages', 'forward.destinations': 'Forward to', 'forward.keepcopy': 'Keep a copy in the mailbox',
      ...destinationLabels('forward.destinations.*'),
    },
    hints: { 'quota.limit': '0 means no limit. Without a custom quota the default applies.' },
    showIf: { 'quota.limit': (v) => v.quota?.custom === true, 'spam_retention.value': (v) => v.spam_retention?.custom === true },
    itemLabels: { 'forward.destinations': 'destination' },
    suggest: { 'forward.destinations.*.name': names },
    transform: (v) => {
      const out = { ...v, forward: { ...v.forward, destinations: cleanDestinations(v.forward?.destinations) } };
      // Without "custom" the stored value is dropped: the action refuses a limit then.
      if (out.quota && !out.quota.custom) out.quota = { custom: false };
      if (out.spam_retention && !out.spam_retention.custom) out.spam_retention = { custom: false };
      return out;
    },
    onDone: () => ctx.refresh(),
  });
}

const rightsText = (r) => (r.rtype === 'custom' ? (r.values || []).join(' ') : { ro: 'read only', rw: 'read/write', full: 'full' }[r.rtype] || r.rtype);
const aclText = (acls) => (acls || []).map((a) => `${a.subject?.dtype === 'group' ? 'group ' : ''}${a.subject?.name}: ${rightsText(a.rights || {})}`).join('; ');

async function publicForm(ctx, existing) {
  let subjects = [];
  try { subjects = await api.run('list-acl-subjects', {}); } catch { /* offered names are a convenience */ }
  return formDialog({
    title: existing ? `Edit public mailbox ${existing.mailbox}` : 'Create public mailbox',
    action: existing ? 'alter-public-mailbox' : 'add-public-mailbox',
    submitLabel: existing ? 'Save' : 'Create public mailbox',
    wide: true,
    values: existing
      ? { mailbox: existing.mailbox, acls: existing.acls.filter((a) => a.stype !== 'none').map((a) => ({ stype: a.stype, subject: { dtype: a.subject.dtype, name: a.subject.name }, rights: a.rights })) }
      : { acls: [{ stype: 'group', rights: { rtype: 'rw' } }] },
    readonly: existing ? ['mailbox'] : [],
    omit: ['acls.*.subject.ui_name', 'acls.*.subject.dtype'],
    labels: {
      mailbox: 'Name', acls: 'Access rights', 'acls.*.stype': 'Granted to', 'acls.*.subject': 'Who',
      'acls.*.subject.name': 'User or group name', 'acls.*.rights': 'Rights', 'acls.*.rights.rtype': 'Rights',
      'acls.*.rights.values': 'Custom rights',
      'acls.*.stype=user': 'User', 'acls.*.stype=group': 'Group',
      'acls.*.rights.rtype=ro': 'Read only', 'acls.*.rights.rtype=rw': 'Read and write', 'acls.*.rights.rtype=full': 'Full control',
      'acls.*.rights.rtype=custom': 'Custom',
    },
    showIf: { 'acls.*.rights.values': (v, acl) => acl?.rights?.rtype === 'custom' },
    itemLabels: { acls: 'owner' },
    // stype "none" (listed for other identifiers) is accepted for NS8 clients, not offered here
    choices: { 'acls.*.stype': [{ value: 'user', label: 'User' }, { value: 'group', label: 'Group' }] },
    suggest: { 'acls.*.subject.name': [...new Set(subjects.map((s) => s.name))] },
    transform: (v) => ({
      ...v,
      acls: (v.acls || []).map((a) => {
        const rights = a.rights?.rtype === 'custom' ? a.rights : { rtype: a.rights?.rtype };
        return { ...a, subject: { dtype: a.stype, ...a.subject }, rights };
      }),
    }),
    onDone: () => ctx.refresh(),
  });
}

export async function render(ctx) {
  const [users, publics, masters, settings] = await Promise.all([
    api.run('list-user-mailboxes', {}), api.run('list-public-mailboxes', {}),
    api.run('get-master-users', {}), api.run('get-mailbox-settings', {})]);

  const userTable = dataTable({
    id: 'user-mailboxes', caption: 'User mailboxes', rows: users.user_mailboxes || [],
    columns: [
      { label: 'User', value: (m) => m.user },
      { label: 'Enabled', value: (m) => (m.enabled === false ? 'disabled' : 'enabled'), render: (m) => badge(m.enabled !== false, 'Enabled', 'Disabled') },
      { label: 'Quota', value: (m) => quotaText(m.quota), render: (m) => h('span', {},
        m.quota?.limit ? h('meter', { min: 0, max: 100, value: Math.min(100, m.quota.percent ?? 0), 'aria-label': `Quota of ${m.user}` }) : null, ' ', quotaText(m.quota)) },
      { label: 'Spam retention', value: (m) => `${m.spam_retention?.value ?? users.default_spam_retention?.value} days${m.spam_retention?.custom ? ', custom' : ''}` },
      { label: 'Forward', value: (m) => (m.forward?.destinations?.length ? `${destinationsText(m.forward.destinations)}${m.forward.keepcopy ? ' (keeps a copy)' : ''}` : '—') },
    ],
    actions: (m) => rowMenu(m.user, [
      { label: 'Edit', onClick: () => mailboxForm(ctx, m) },
      { label: m.enabled === false ? 'Enable' : 'Disable', danger: m.enabled !== false, onClick: async () => {
        const enable = m.enabled === false;
        if (!enable && !(await confirm(`Disable the mailbox of ${m.user}? Mail to it is refused until it is enabled again.`, { action: 'Disable' }))) return;
        if ((await act('set-mailbox-enabled', { user: m.user, enabled: enable }, `${m.user} ${enable ? 'enabled' : 'disabled'}`)) !== undefined) ctx.refresh();
      } },
    ]),
  });

  const publicTable = dataTable({
    id: 'public-mailboxes', caption: 'Public mailboxes', rows: publics,
    columns: [
      { label: 'Public mailbox', value: (p) => p.mailbox },
      { label: 'Access rights', value: (p) => aclText(p.acls) },
    ],
    actions: (p) => rowMenu(p.mailbox, [
      { label: 'Edit', onClick: () => publicForm(ctx, p) },
      { label: 'Delete', danger: true, onClick: async () => {
        if (!(await confirm(`Delete the public mailbox ${p.mailbox} and the messages in it?`))) return;
        if ((await act('remove-public-mailbox', { mailbox: p.mailbox }, `${p.mailbox} deleted`)) !== undefined) ctx.refresh();
      } },
    ]),
    empty: 'No public mailbox yet.',
  });

  return h('div', {},
    section('User mailboxes', [], h('p', { class: 'hint' }, `Default quota: ${users.default_quota?.limit ? mib(users.default_quota.limit) : 'no limit'}; default spam retention: ${users.default_spam_retention?.value ?? '—'} days.`), userTable.element),
    section('Public mailboxes', [button('Create public mailbox', () => publicForm(ctx), 'primary', { id: 'add-public-mailbox' })], publicTable.element),
    h('div', { class: 'cards-2' },
      await formCard({
        title: 'Master users', action: 'set-master-users', values: masters,
        labels: { master_users: 'Master users' },
        hints: { master_users: 'User names, one per line. A master user logs in to any mailbox as user*master with their own password.' },
        onDone: () => ctx.refresh(),
      }),
      await formCard({
        title: 'Mailbox settings', action: 'set-mailbox-settings', values: settings,
        labels: {
          quota: 'Mailboxes', 'quota.limit': 'Default mail quota (MiB)', sharedseen: 'Shared mailboxes', 'sharedseen.enabled': 'Shared seen',
          spam_folder: 'Spam folder', 'spam_folder.enabled': 'Move spam to junk folder', 'spam_folder.name': 'Folder name',
          spam_prefix: 'Spam subject prefix', 'spam_prefix.enabled': 'Add a prefix to the subject of spam', 'spam_prefix.prefix': 'Prefix',
          spam_retention: 'Spam retention', 'spam_retention.value': 'Default spam retention (days)',
        },
        showIf: { 'spam_folder.name': (v) => v.spam_folder?.enabled, 'spam_prefix.prefix': (v) => v.spam_prefix?.enabled },
        transform: (v) => {
          const out = structuredClone(v);
          if (out.spam_folder && !out.spam_folder.enabled && !out.spam_folder.name) delete out.spam_folder.name;
          if (out.spam_prefix && !out.spam_prefix.enabled && !out.spam_prefix.prefix) delete out.spam_prefix.prefix;
          return out;
        },
        onDone: () => ctx.refresh(),
      })));
}
