/** Queue: the messages Postfix still holds; refresh, details, resend, delete, trace, lifetime. */
import * as api from '../api.js';
import { h } from '../dom.js';
import { act, button, confirm, dataTable, dialog, formCard, formDialog, rowMenu, section, toast } from '../widgets.js';

const when = (unix) => (unix ? new Date(unix * 1000).toLocaleString() : '—');
const size = (bytes) => (bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`);
const reasons = (m) => [...new Set((m.recipients || []).map((r) => r.delay_reason).filter(Boolean))].join('; ');

function details(m) {
  const rows = [
    ['Queue ID', m.queue_id], ['Message ID', m.message_id || '—'], ['Queue', m.queue_name],
    ['Arrival time', when(m.arrival_time)], ['Size', size(m.message_size)], ['Sender', m.sender || '(empty: a bounce)'],
  ];
  dialog({
    title: `Message ${m.queue_id}`, id: 'dialog-queue-details', wide: true,
    content: h('div', {},
      h('dl', { class: 'facts' }, rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))),
      h('h3', {}, 'Recipients'),
      h('ul', { class: 'recipients' }, (m.recipients || []).map((r) => h('li', {}, h('strong', {}, r.address), r.delay_reason ? h('div', { class: 'reason' }, r.delay_reason) : null)))),
    buttons: [{ label: 'Close' }],
  });
}

/** The log lines of a message from every daemon, in order. */
export async function trace(messageId) {
  let out;
  try {
    out = await api.run('trace-message', { message_id: messageId });
  } catch (error) {
    toast(`Trace failed: ${error.fieldErrors?.[0]?.error || error.message}`, 'error');
    return;
  }
  showTrace(out);
}

/** The trace dialog for a trace-message output. */
function showTrace(out) {
  const lines = out.lines || [];
  dialog({
    title: `Trace of ${out.message_id}`, id: 'dialog-trace', wide: true,
    content: h('div', {},
      h('p', {}, `Queue IDs: ${(out.queue_ids || []).join(', ') || '—'}; ${lines.length} log lines.`),
      h('div', { class: 'table-scroll' }, h('table', { class: 'data log', id: 'trace-lines' },
        h('caption', { class: 'sr-only' }, 'Log lines'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Daemon'), h('th', { scope: 'col' }, 'Line'))),
        h('tbody', {}, lines.length ? lines.map((l) => h('tr', {}, h('td', { 'data-label': 'Time' }, l.time), h('td', { 'data-label': 'Daemon' }, l.daemon), h('td', { 'data-label': 'Line' }, h('code', {}, l.text))))
          : h('tr', {}, h('td', { colspan: 3, class: 'empty' }, 'No log line names this message.')))))),
    buttons: [{ label: 'Close' }],
  });
}

async function flushAll(ctx, action) {
  const verb = action === 'delete_all' ? 'Delete' : 'Resend';
  if (!(await confirm(action === 'delete_all' ? 'Delete every message in the queue? They are lost.' : 'Try to deliver every queued message now?',
    { action: `${verb} all`, title: `${verb} all` }))) return;
  const button = document.getElementById(action === 'delete_all' ? 'queue-delete-all' : 'queue-resend-all');
  const label = button?.textContent;
  try {
    await api.runTask('flush-postfix-queue', { queue: '', action }, (percent) => {
      if (button) { button.disabled = true; button.textContent = `${label} (${percent}%)`; }
    });
    toast(`${verb} all: done`);
  } catch (error) {
    toast(`${verb} all failed: ${error.message}`, 'error');
  }
  ctx.refresh();
}

export async function render(ctx) {
  const [queue, settings] = await Promise.all([api.run('report-queue-status', {}), api.run('get-queue-settings', {})]);
  const messages = queue.queue_status || [];
  ctx.buttons.append(
    button('Refresh', () => ctx.refresh(), 'secondary', { id: 'queue-refresh' }),
    button('Resend all', () => flushAll(ctx, 'resend_all'), 'secondary', { id: 'queue-resend-all', disabled: !messages.length }),
    button('Delete all', () => flushAll(ctx, 'delete_all'), 'danger', { id: 'queue-delete-all', disabled: !messages.length }),
    button('Settings', () => formDialog({
      title: 'Queue settings', action: 'set-queue-settings', values: settings,
      labels: { maximal_queue_lifetime: 'Maximal queue lifetime (hours)' }, onDone: () => ctx.refresh(),
    }), 'secondary', { id: 'queue-settings' }));

  const table = dataTable({
    id: 'queue', caption: 'Queued messages', rows: messages,
    columns: [
      { label: 'Queue ID', value: (m) => m.queue_id },
      { label: 'Arrival', value: (m) => when(m.arrival_time) },
      { label: 'Sender', value: (m) => m.sender || '<>' },
      { label: 'Recipients', value: (m) => (m.recipients || []).map((r) => r.address).join(', ') },
      { label: 'Size', value: (m) => size(m.message_size) },
      { label: 'Delay reason', value: reasons },
    ],
    actions: (m) => rowMenu(m.queue_id, [
      { label: 'See details', onClick: () => details(m) },
      { label: 'Trace', hidden: !m.message_id, onClick: () => trace(m.message_id) },
      { label: 'Resend', onClick: async () => {
        if ((await act('flush-postfix-queue', { queue: m.queue_id, action: 'resend' }, `${m.queue_id}: delivery tried again`)) !== undefined) ctx.refresh();
      } },
      { label: 'Delete', danger: true, onClick: async () => {
        if (!(await confirm(`Delete message ${m.queue_id} from ${m.sender || '<>'}? It is lost.`))) return;
        if ((await act('flush-postfix-queue', { queue: m.queue_id, action: 'delete' }, `${m.queue_id} deleted`)) !== undefined) ctx.refresh();
      } },
    ]),
    empty: 'The queue is empty: every message was delivered.',
  });

  const traceForm = await formCard({
    title: 'Trace a message', action: 'trace-message', submitLabel: 'Trace',
    labels: { message_id: 'Message ID' },
    intro: h('p', { class: 'hint' }, 'Every daemon\'s log lines for one message: reception, filter verdict, relay or delivery.'),
    onDone: (out) => showTrace(out),
  });
  return h('div', {},
    section('Queued messages', [], h('p', { class: 'hint' }, `Messages are returned to their sender after ${settings.maximal_queue_lifetime} hours in the queue.`), table.element),
    traceForm);
}
