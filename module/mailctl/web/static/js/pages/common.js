/** Helpers shared by several pages. */
import * as api from '../api.js';

/** "user john", "external a@b.c"... */
export function destinationText(d) {
  if (!d) return '';
  const kinds = { user: 'user', group: 'group', public: 'public mailbox', external: 'external', apo: 'removed' };
  return `${kinds[d.dtype] || d.dtype} ${d.ui_name && d.ui_name !== d.name ? `${d.name} (${d.ui_name})` : d.name}`;
}

export const destinationsText = (list) => (list || []).map(destinationText).join(', ');

/** Names offered for a destination's name field (users, groups, public mailboxes). */
export async function destinationNames() {
  try {
    const list = await api.run('list-destinations', {});
    return [...new Set(list.map((d) => d.name))];
  } catch {
    return [];
  }
}

/** Labels of the destination fields. */
export const destinationLabels = (path) => ({
  [`${path}.dtype`]: 'Type',
  [`${path}.name`]: 'Name or address',
  [`${path}.dtype=user`]: 'User mailbox',
  [`${path}.dtype=group`]: 'Group',
  [`${path}.dtype=public`]: 'Public mailbox',
  [`${path}.dtype=external`]: 'External address',
});

/** Drop the display names of destinations (ui_name is ignored by the actions). */
export const cleanDestinations = (list) => (list || []).filter((d) => d.dtype !== 'apo').map(({ dtype, name }) => ({ dtype, name }));
