/** First-configuration wizard: get-defaults suggests, configure-module applies. */
import * as api from '../api.js';
import { h } from '../dom.js';
import { formCard } from '../widgets.js';

export async function render(ctx) {
  const defaults = await api.run('get-defaults', {});
  const userDomains = (defaults.user_domains || []).map((d) => ({
    value: d.name, label: `${d.name} (${d.location === 'internal' ? 'embedded LDAP' : `external, ${d.schema}`})`,
  }));
  return h('div', {},
    h('p', { class: 'lead' }, 'Welcome. Three values and the mail server is ready: its host name (the name of your MX record), ',
      'the primary mail domain (more can be added later) and the user domain whose users get a mailbox.'),
    await formCard({
      title: 'First configuration', action: 'configure-module', submitLabel: 'Configure',
      order: ['hostname', 'mail_domain', 'user_domain'],
      values: { hostname: defaults.hostname, mail_domain: defaults.mail_domain || undefined, user_domain: userDomains[0]?.value },
      labels: { hostname: 'Mail server hostname', mail_domain: 'Primary mail domain', user_domain: 'User domain' },
      hints: { user_domain: 'An address is created for every user of this domain.' },
      choices: userDomains.length ? { user_domain: userDomains } : {},
      onDone: () => { ctx.state.configured = true; return ctx.navigate('status'); },
    }));
}
