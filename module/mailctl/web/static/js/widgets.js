/** Shared widgets: dialogs, confirmations, toasts, paged tables, action menus, action forms. */
import * as api from './api.js';
import { h, slug } from './dom.js';
import { SchemaForm } from './schemaform.js';

/** Show a short message at the bottom of the screen. */
export function toast(text, kind = 'ok') {
  const box = document.getElementById('toasts');
  const item = h('div', { class: `toast toast-${kind}` }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 3500);
}

/**
 * A modal dialog. `content` is a node; `buttons` [{label, onClick, kind}] (onClick may be
 * async and return false to keep the dialog open). Resolves with the dialog element removed.
 */
export function dialog({ title, content, buttons = [], id, wide = false }) {
  const titleId = `${id || 'dialog'}-title`;
  const el = h('dialog', { class: `dialog${wide ? ' wide' : ''}`, id, 'aria-labelledby': titleId });
  const footer = h('div', { class: 'dialog-buttons' });
  const close = () => { el.close(); el.remove(); };
  for (const button of buttons) {
    const b = h('button', { type: 'button', class: button.kind || 'secondary' }, button.label);
    b.addEventListener('click', async () => {
      if (!button.onClick) return close();
      b.disabled = true;
      try {
        if ((await button.onClick(b)) !== false) close();
      } finally {
        b.disabled = false;
      }
    });
    footer.append(b);
  }
  el.append(h('h2', { id: titleId }, title), h('div', { class: 'dialog-body' }, content), footer);
  el.addEventListener('cancel', () => el.remove());
  document.body.append(el);
  el.showModal();
  return { element: el, close };
}

/** Ask before anything destructive; resolves true when confirmed. */
export function confirm(question, { action = 'Delete', title = 'Please confirm' } = {}) {
  return new Promise((resolve) => {
    let answered = false;
    const d = dialog({
      title, id: 'confirm-dialog',
      content: h('p', {}, question),
      buttons: [
        { label: 'Cancel', onClick: () => { answered = true; resolve(false); } },
        { label: action, kind: 'danger', onClick: () => { answered = true; resolve(true); } },
      ],
    });
    d.element.addEventListener('close', () => { if (!answered) resolve(false); });
  });
}

/** A "⋮" menu of row actions [{label, onClick, danger, hidden}]. */
export function rowMenu(name, items) {
  const visible = items.filter((i) => i && !i.hidden);
  const menu = h('details', { class: 'menu' });
  const list = h('div', { class: 'menu-items', role: 'menu' }, visible.map((item) => h('button', {
    type: 'button', role: 'menuitem', class: item.danger ? 'danger-text' : '',
    onclick: () => { menu.open = false; item.onClick(); },
  }, item.label)));
  menu.append(h('summary', { 'aria-label': `Actions for ${name}`, title: 'Actions' }, '⋮'), list);
  return menu;
}
document.addEventListener('click', (event) => {
  for (const open of document.querySelectorAll('details.menu[open]')) {
    if (!open.contains(event.target)) open.open = false;
  }
});

/**
 * A table with search and paging done in the page (usable with 10,000 rows).
 * columns: [{label, value: row => text, render?: row => node}]; actions: row => node.
 */
export function dataTable({ id, caption, columns, rows = [], actions, pageSizes = [25, 50, 100], empty = 'Nothing here yet.' }) {
  let all = [];
  let shown = [];
  let page = 0;
  let pageSize = pageSizes[0];
  const search = h('input', { type: 'search', id: `${id}-search`, placeholder: 'Search', autocomplete: 'off' });
  const sizeSelect = h('select', { id: `${id}-size` }, pageSizes.map((n) => h('option', { value: n }, String(n))));
  const info = h('span', { class: 'page-info', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'secondary small', onclick: () => go(page - 1) }, 'Previous');
  const next = h('button', { type: 'button', class: 'secondary small', onclick: () => go(page + 1) }, 'Next');
  const tbody = h('tbody');
  const table = h('table', { class: 'data', id },
    h('caption', { class: 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.label)), actions ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')) : null)),
    tbody);

  function draw() {
    const pages = Math.max(1, Math.ceil(shown.length / pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    const slice = shown.slice(page * pageSize, (page + 1) * pageSize);
    tbody.replaceChildren(...(slice.length ? slice.map(({ row }) => h('tr', {},
      columns.map((c) => h('td', { 'data-label': c.label }, c.render ? c.render(row) : String(c.value(row) ?? ''))),
      actions ? h('td', { class: 'actions' }, actions(row)) : null))
      : [h('tr', {}, h('td', { colspan: columns.length + (actions ? 1 : 0), class: 'empty' }, all.length ? 'No match.' : empty))]));
    const first = shown.length ? page * pageSize + 1 : 0;
    info.textContent = `${first}–${page * pageSize + slice.length} of ${shown.length}${shown.length !== all.length ? ` (${all.length} in all)` : ''}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  function filter() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    shown = words.length ? all.filter((r) => words.every((w) => r.text.includes(w))) : all;
    page = 0;
    draw();
  }
  function go(p) { page = p; draw(); }
  let timer = null;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(filter, 120); });
  sizeSelect.addEventListener('change', () => { pageSize = Number(sizeSelect.value); page = 0; draw(); });

  const element = h('div', { class: 'table-box' },
    h('div', { class: 'table-tools' },
      h('label', { for: search.id, class: 'sr-only' }, `Search ${caption}`), search,
      h('span', { class: 'spacer' }),
      h('label', { for: sizeSelect.id }, 'Per page '), sizeSelect),
    h('div', { class: 'table-scroll' }, table),
    h('div', { class: 'pager' }, prev, info, next));

  function setRows(newRows) {
    all = newRows.map((row) => ({ row, text: columns.map((c) => String(c.value(row) ?? '')).join(' ').toLowerCase() }));
    filter();
  }
  setRows(rows);
  return { element, setRows, search };
}

/** Run an action from a form: 422 errors go next to their fields, others to the form. */
async function submit(form, action, transform, { task = false } = {}) {
  form.clearErrors();
  const data = transform ? transform(form.values()) : form.values();
  try {
    return { ok: true, output: await (task ? api.runTask(action, data) : api.run(action, data)) };
  } catch (error) {
    if (error.fieldErrors?.length) form.showErrors(error.fieldErrors);
    else form.showFormError(error.message);
    return { ok: false, error };
  }
}

/**
 * A dialog with a form built from an action's input schema. `onDone(output, input)` runs after
 * a successful call (the dialog closes); on 422 the errors are shown and the dialog stays.
 */
export async function formDialog({ title, action, submitLabel = 'Save', intro = null, transform, onDone, wide, ...options }) {
  const schema = await api.inputSchema(action);
  const form = new SchemaForm(schema, { id: `f-${action}`, ...options });
  const body = h('form', { novalidate: true, onsubmit: (e) => { e.preventDefault(); save.click(); } }, intro, form.element,
    h('button', { type: 'submit', hidden: true, tabindex: -1 }, submitLabel));
  const d = dialog({
    title, id: `dialog-${action}`, content: body, wide,
    buttons: [
      { label: 'Cancel' },
      { label: submitLabel, kind: 'primary', onClick: async () => {
        const result = await submit(form, action, transform);
        if (!result.ok) return false;
        toast(`${title}: done`);
        await onDone?.(result.output);
        return true;
      } },
    ],
  });
  const save = d.element.querySelector('.dialog-buttons .primary');
  d.element.querySelector('input:not([type=checkbox]):not([readonly]), select, textarea')?.focus();
  return d;
}

/** A page section with a form built from an action's schema and a Save button. */
export async function formCard({ title, action, submitLabel = 'Save', intro = null, transform, onDone, task, ...options }) {
  const schema = await api.inputSchema(action);
  const form = new SchemaForm(schema, { id: `f-${action}`, ...options });
  const button = h('button', { type: 'submit', class: 'primary' }, submitLabel);
  const el = h('form', { class: 'card', id: `card-${slug(action)}`, novalidate: true, 'aria-label': title }, h('h2', {}, title), intro, form.element,
    h('div', { class: 'form-buttons' }, button));
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      const result = await submit(form, action, transform, { task });
      if (result.ok) {
        toast(`${title}: saved`);
        await onDone?.(result.output);
      }
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

/** Run an action, report failures as a toast; resolves the output or undefined. */
export async function act(action, data, success) {
  try {
    const out = await api.run(action, data);
    if (success) toast(success);
    return out ?? {};
  } catch (error) {
    const fields = error.fieldErrors?.map((e) => `${e.field}: ${e.error}`).join('; ');
    toast(`${action} failed: ${fields || error.message}`, 'error');
    return undefined;
  }
}

/** A labelled yes/no badge. */
export function badge(on, yes = 'Yes', no = 'No') {
  return h('span', { class: `badge ${on ? 'on' : 'off'}` }, on ? yes : no);
}

/** A small section with a heading and optional buttons to the right. */
export function section(title, buttons = [], ...body) {
  return h('section', { class: 'card', 'aria-label': title },
    h('div', { class: 'card-head' }, h('h2', {}, title), h('div', { class: 'card-buttons' }, buttons)), body);
}

/** A button. */
export function button(label, onClick, kind = 'secondary', attrs = {}) {
  return h('button', { type: 'button', class: kind, onclick: onClick, ...attrs }, label);
}
