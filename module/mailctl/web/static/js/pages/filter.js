/** Filter: antispam thresholds, greylist and block lists, antivirus, bypass rules, and the Rspamd web UI. */
import * as api from '../api.js';
import { h } from '../dom.js';
import { act, button, confirm, dataTable, formCard, formDialog, rowMenu, section } from '../widgets.js';

const bypassTypes = { ip: 'Sender IP address', cidr: 'Sender network (CIDR)', email: 'Email address', domain: 'Email domain' };

function bypassText(rule) {
  const who = rule.type === 'ip' || rule.type === 'cidr' ? 'client' : rule.direction === 'to' ? 'recipient' : 'sender';
  return `${who} ${rule.type}`;
}

export async function render(ctx) {
  const [config, bypass] = await Promise.all([api.run('get-filter-configuration', {}), api.run('list-bypass-rules', {})]);
  ctx.buttons.append(h('a', { class: 'button primary', href: '/rspamd/', target: '_blank', rel: 'noopener', id: 'open-rspamd' }, 'Open Rspamd'));
  const memory = config.antivirus?.memory_info;
  const rules = bypass.bypass_rules || [];

  const table = dataTable({
    id: 'bypass-rules', caption: 'Bypass rules', rows: rules,
    columns: [
      { label: 'Applies to', value: bypassText },
      { label: 'Value', value: (r) => r.value },
    ],
    actions: (r) => rowMenu(r.value, [{ label: 'Delete', danger: true, onClick: async () => {
      if (!(await confirm(`Delete the bypass rule for ${r.value}? Its messages are filtered again.`))) return;
      if ((await act('remove-bypass-rule', { type: r.type, direction: r.direction, value: r.value }, 'Bypass rule deleted')) !== undefined) ctx.refresh();
    } }]),
    empty: 'No bypass rule: every message is filtered.',
  });
  const addRule = () => formDialog({
    title: 'Add bypass rule', action: 'add-bypass-rule', submitLabel: 'Add rule',
    order: ['type', 'direction', 'value'],
    values: { type: 'email', direction: 'from' },
    labels: {
      type: 'Criterion', direction: 'Direction', value: 'Value',
      ...Object.fromEntries(Object.entries(bypassTypes).map(([k, v]) => [`type=${k}`, v])),
      'direction=from': 'From (sender or client)', 'direction=to': 'To (recipient)',
    },
    hints: { direction: 'IP and network rules always apply to the sending client (From).' },
    onDone: () => ctx.refresh(),
  });

  return h('div', {},
    h('div', { class: 'cards-2' },
      await formCard({
        title: 'Antispam and antivirus', action: 'set-filter-configuration',
        values: { antispam: config.antispam, antivirus: config.antivirus },
        omit: ['antispam.rspamd_url', 'antivirus.memory_info'],
        showIf: { 'antispam.greylist.threshold': (v) => v.antispam?.greylist?.enabled, 'antispam.rbl.lists': (v) => v.antispam?.rbl?.enabled },
        labels: {
          antispam: 'Antispam', 'antispam.enabled': 'Antispam enabled',
          'antispam.spam_flag_threshold': 'Spam flag threshold', 'antispam.deny_message_threshold': 'Deny message spam threshold',
          'antispam.greylist': 'Greylist', 'antispam.greylist.enabled': 'Greylist enabled', 'antispam.greylist.threshold': 'Greylist threshold',
          'antispam.rbl': 'DNS block lists', 'antispam.rbl.enabled': 'Check DNS block lists', 'antispam.rbl.lists': 'Block list zones',
          antivirus: 'Antivirus', 'antivirus.enabled': 'Antivirus enabled', 'antivirus.clamav_official_sigs': 'Enable ClamAV official signatures',
          'antivirus.third_party_sigs_rating': 'Unofficial signatures rating',
          'antivirus.third_party_sigs_rating=low': 'Low', 'antivirus.third_party_sigs_rating=medium': 'Medium', 'antivirus.third_party_sigs_rating=high': 'High',
        },
        hints: {
          'antispam.spam_flag_threshold': 'A message with this score or more is marked as spam.',
          'antispam.deny_message_threshold': 'A message with this score or more is refused.',
          'antivirus.third_party_sigs_rating': 'Higher ratings block more, with more false positives.',
        },
        intro: memory ? h('p', { class: 'hint', id: 'clamav-memory' },
          `Memory: ${Math.round(memory.installed)} MiB installed; the official signatures need about ${Math.round(memory.recommended)} MiB`,
          memory.used !== undefined ? `; ClamAV uses ${Math.round(memory.used)} MiB now.` : '.') : null,
        onDone: () => ctx.refresh(),
      }),
      section('Bypass rules', [button('Add bypass rule', addRule, 'primary', { id: 'add-bypass-rule' })],
        h('p', { class: 'hint' }, 'Messages matching a rule skip the antispam and antivirus checks.'), table.element)));
}
