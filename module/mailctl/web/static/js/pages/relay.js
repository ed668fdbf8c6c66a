/** Relay: relay rules (sender, recipient, default), relay networks, sender/login match, always BCC. */
import * as api from '../api.js';
import { h } from '../dom.js';
import { act, badge, button, confirm, dataTable, formCard, formDialog, rowMenu, section } from '../widgets.js';

const typeText = { sender: 'Sender', recipient: 'Recipient', wildcard: 'Default' };
const labels = {
  rule_type: 'Rule type', rule_subject: 'Subject (address or domain)', host: 'Hostname', port: 'Port',
  mandatory_tls: 'TLS: require encryption to this server', username: 'User name', password: 'Password', enabled: 'Enabled',
  'rule_type=sender': 'Sender', 'rule_type=recipient': 'Recipient', 'rule_type=wildcard': 'Default (every message)',
};

async function ruleForm(ctx, { existing, wildcard = false } = {}) {
  const values = existing
    ? { rule_type: existing.rule_type, rule_subject: existing.rule_subject, host: existing.host, port: existing.port,
      mandatory_tls: existing.tls, username: existing.username || '', enabled: existing.enabled }
    : { rule_type: wildcard ? 'wildcard' : 'sender', rule_subject: wildcard ? '*' : undefined, port: 587, mandatory_tls: true, enabled: true };
  return formDialog({
    title: existing ? `Edit relay rule ${existing.rule_subject}` : wildcard ? 'Set default rule' : 'Add relay rule',
    action: existing ? 'alter-relay-rule' : 'add-relay-rule',
    submitLabel: existing ? 'Save' : wildcard ? 'Set default rule' : 'Add rule',
    order: ['rule_type', 'rule_subject', 'host', 'port', 'mandatory_tls', 'username', 'password', 'enabled'],
    values, labels,
    choices: wildcard || existing ? {} : { rule_type: [{ value: 'sender', label: 'Sender' }, { value: 'recipient', label: 'Recipient' }] },
    readonly: existing || wildcard ? ['rule_type', 'rule_subject'] : [],
    hints: {
      rule_subject: 'A full address matches exactly; a domain matches every address of it.',
      password: existing?.has_password ? 'A password is stored: leave empty to keep it.' : 'Only if the server asks for authentication.',
    },
    transform: (v) => {
      const out = { ...v };
      if (!out.username) delete out.username;
      if (!out.password) delete out.password;
      if (existing && !out.username && existing.username) out.username = '';
      return out;
    },
    onDone: () => ctx.refresh(),
  });
}

export async function render(ctx) {
  const [rules, config, bcc] = await Promise.all([
    api.run('list-relay-rules', {}), api.run('get-relay-configuration', {}), api.run('get-always-bcc', {})]);
  const list = rules.rules || [];
  ctx.buttons.append(
    button('Add relay rule', () => ruleForm(ctx), 'primary', { id: 'add-relay-rule' }),
    button(rules.has_wildcard ? 'Edit default rule' : 'Set default rule', () => ruleForm(ctx, rules.has_wildcard
      ? { existing: list.find((r) => r.rule_type === 'wildcard') } : { wildcard: true }), 'secondary', { id: 'set-default-rule' }));

  const table = dataTable({
    id: 'relay-rules', caption: 'Relay rules', rows: list,
    columns: [
      { label: 'Type', value: (r) => typeText[r.rule_type] || r.rule_type },
      { label: 'Subject', value: (r) => r.rule_subject },
      { label: 'Server', value: (r) => `${r.host}:${r.port}` },
      { label: 'TLS', value: (r) => (r.tls ? 'required' : 'optional'), render: (r) => badge(r.tls, 'Required', 'Optional') },
      { label: 'Authentication', value: (r) => (r.username ? `${r.username}${r.has_password ? ' (password set)' : ''}` : '—') },
      { label: 'Enabled', value: (r) => (r.enabled ? 'enabled' : 'disabled'), render: (r) => badge(r.enabled, 'Enabled', 'Disabled') },
    ],
    actions: (r) => rowMenu(r.rule_subject, [
      { label: 'Edit', onClick: () => ruleForm(ctx, { existing: r }) },
      { label: r.enabled ? 'Disable' : 'Enable', onClick: async () => {
        const data = { rule_type: r.rule_type, rule_subject: r.rule_subject, host: r.host, port: r.port, mandatory_tls: r.tls, enabled: !r.enabled };
        if (r.username) data.username = r.username;
        if ((await act('alter-relay-rule', data, `Rule ${r.rule_subject} ${r.enabled ? 'disabled' : 'enabled'}`)) !== undefined) ctx.refresh();
      } },
      { label: 'Delete', danger: true, onClick: async () => {
        if (!(await confirm(`Delete the relay rule for ${r.rule_subject}?`))) return;
        if ((await act('remove-relay-rule', { rule_subject: r.rule_subject, rule_type: r.rule_type }, 'Relay rule deleted')) !== undefined) ctx.refresh();
      } },
    ]),
    empty: 'No relay rule: mail goes to the MX of each recipient domain.',
  });

  return h('div', {},
    section('Relay rules', [], h('p', { class: 'hint' }, 'Evaluated in this order: sender, recipient, default; the first match wins.'), table.element),
    h('div', { class: 'cards-2' },
      await formCard({
        title: 'Relay settings', action: 'set-relay-configuration', values: config,
        labels: { networks: 'Allow relay from these IP addresses', postfix_restricted_sender: 'Enforce sender/login match' },
        hints: {
          networks: 'IPv4 or IPv6 addresses and CIDR networks (e.g. 192.168.12.42 10.77.4.0/24), one per line: they send without authentication.',
          postfix_restricted_sender: 'The sender address must belong to the login used to send.',
        },
        onDone: () => ctx.refresh(),
      }),
      await formCard({
        title: 'Always BCC', action: 'set-always-bcc', values: { bcc: bcc.bcc },
        omit: ['bcc_archive'],
        labels: { bcc: 'Always BCC address' },
        hints: { bcc: 'Receives a hidden copy of every message sent or received. Empty: off. Check your privacy laws.' },
        transform: (v) => ({ bcc: v.bcc ?? '' }),
        onDone: () => ctx.refresh(),
      })));
}
