/**
 * Forms built from an action's input schema (JSON Schema draft 7, $refs inlined by the server).
 *
 * Each property becomes a labelled field: booleans are checkboxes, enums selects, numbers and
 * strings text inputs, arrays of scalars a textarea (one value per line), arrays of enums a
 * group of checkboxes, arrays of objects repeatable groups, objects fieldsets. Values are not
 * checked here: the action validates them and its 422 error list is shown next to the fields
 * it names (`field` is the dotted path, e.g. `antispam.spam_flag_threshold`).
 *
 * Options (keys are dotted paths; list indexes may be written `*`):
 *   values    initial values (an object like the action's input)
 *   labels    {path: label}            hints   {path: text}
 *   hidden    [paths] not shown; the initial value is still sent
 *   readonly  [paths] shown disabled; the initial value is sent
 *   omit      [paths] neither shown nor sent (nor are readOnly and deprecated properties)
 *   choices   {path: [value | {value, label}]} a select instead of a text input
 *   suggest   {path: [value]} a datalist of suggestions
 *   order     [keys] first in this order at the top level
 *   showIf    {path: values => bool} shown only while true (e.g. a limit only with "custom")
 */
import { h, humanize, slug } from './dom.js';

let formCounter = 0;

/** The schema with its allOf parts merged in (properties and required). */
export function flatten(schema) {
  if (!schema || typeof schema !== 'object') return {};
  schema = shapeBranch(schema);
  if (!Array.isArray(schema.allOf)) return schema;
  const out = { ...schema };
  delete out.allOf;
  for (const part of schema.allOf.map(flatten)) {
    if (part.properties) out.properties = { ...part.properties, ...(out.properties || {}) };
    if (part.required) out.required = [...new Set([...(out.required || []), ...part.required])];
    for (const key of ['type', 'title', 'enum', 'const', 'items', 'anyOf', 'oneOf']) {
      if (out[key] === undefined && part[key] !== undefined) out[key] = part[key];
    }
  }
  return out;
}

/**
 * A value that may take two shapes ({"if": {"type": "array"}, "then": ..., "else": ...}, as
 * NS8 accepts a list or an object): the form edits the object branch.
 */
function shapeBranch(schema) {
  if (schema.properties || schema.type || !schema.if || typeof schema.if.type !== 'string') return schema;
  const branch = [schema.else, schema.then].find((b) => b && (b.type === 'object' || b.properties));
  if (!branch) return schema;
  const out = { ...schema, ...branch };
  delete out.if; delete out.then; delete out.else;
  return out;
}

function isStringy(s) {
  s = flatten(s);
  if (s.type === 'string' || typeof s.const === 'string' || s.pattern || s.format) return true;
  const options = s.anyOf || s.oneOf;
  return Array.isArray(options) && options.every(isStringy);
}

/** What widget a schema needs: {kind, nullable, schema, values?}. */
export function classify(schema) {
  let s = flatten(schema);
  if (Array.isArray(s.enum)) return { kind: 'enum', nullable: s.enum.includes(null), schema: s };
  if ('const' in s) return { kind: 'const', nullable: false, schema: s };
  const options = s.oneOf || s.anyOf;
  if (Array.isArray(options) && !s.type && !s.properties) {
    const flat = options.map(flatten);
    const notNull = flat.filter((o) => o.type !== 'null');
    const nullable = notNull.length < flat.length;
    if (notNull.length === 1) {
      const merged = { ...s, ...notNull[0] };
      delete merged.oneOf; delete merged.anyOf;
      if (notNull[0].oneOf || notNull[0].anyOf) merged.anyOf = notNull[0].oneOf || notNull[0].anyOf;
      return { ...classify(merged), nullable };
    }
    if (notNull.every(isStringy)) return { kind: 'string', nullable, schema: s };
    return { kind: 'json', nullable, schema: s };
  }
  let type = s.type;
  let nullable = false;
  if (Array.isArray(type)) {
    nullable = type.includes('null');
    type = type.find((t) => t !== 'null');
  }
  type ||= s.properties ? 'object' : s.items ? 'array' : 'string';
  if (type === 'boolean') return { kind: 'bool', nullable, schema: s };
  if (type === 'integer' || type === 'number') return { kind: 'number', nullable, schema: s };
  if (type === 'object') return { kind: s.properties ? 'object' : 'json', nullable, schema: s };
  if (type === 'array') {
    const items = flatten(s.items || {});
    if (Array.isArray(items.enum)) return { kind: 'multi', nullable, schema: s, items };
    if (items.type === 'object' || items.properties) return { kind: 'list', nullable, schema: s, items };
    return { kind: 'lines', nullable, schema: s, items };
  }
  return { kind: 'string', nullable, schema: s };
}

/** The option key of a path: list indexes become `*`. */
const pattern = (path) => path.split('.').map((p) => (/^\d+$/.test(p) ? '*' : p)).join('.');

function getPath(object, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), object);
}

/** Turn a validation error into a short sentence for the field it names. */
export function errorText(error) {
  const code = String(error.error || '');
  if (code.endsWith('_required')) return 'Required';
  if (/_(pattern|format|anyOf|oneOf)$/.test(code)) {
    return error.value === null || error.value === undefined ? 'Invalid value' : `Invalid value: ${error.value}`;
  }
  if (code.endsWith('_enum')) return 'Not one of the allowed values';
  return error.message || code || 'Invalid value';
}

export class SchemaForm {
  /** @param schema the action's input schema; @param options see the module comment. */
  constructor(schema, options = {}) {
    this.options = options;
    this.id = options.id || `form${++formCounter}`;
    this.values0 = options.values || {};
    this.wrappers = new Map();
    this.formError = h('p', { class: 'error form-error', role: 'alert', hidden: true });
    const root = this.renderObject('', flatten(schema), this.values0, true);
    this.getRoot = root.get;
    this.element = h('div', { class: 'schema-form', id: this.id }, this.formError, root.body);
    if (options.showIf) {
      const update = () => this.applyShowIf();
      this.element.addEventListener('change', update);
      this.element.addEventListener('click', (e) => { if (e.target.closest('button')) setTimeout(update, 0); });
      update();
    }
  }

  /** Show or hide the fields of the showIf option (list paths with * apply to every row). */
  applyShowIf() {
    const values = this.values();
    for (const [path, test] of Object.entries(this.options.showIf)) {
      for (const [wrapperPath, wrapper] of this.wrappers) {
        if (pattern(wrapperPath) !== path) continue;
        const row = wrapperPath.split('.').slice(0, path.split('.').indexOf('*') + 1).join('.');
        wrapper.hidden = !test(values, path.includes('*') ? getPath(values, row) : undefined);
      }
    }
  }

  opt(name, path) {
    const table = this.options[name];
    if (!table) return undefined;
    if (Array.isArray(table)) return table.includes(path) || table.includes(pattern(path));
    return table[path] ?? table[pattern(path)];
  }

  /** The input to send: the form's values, without empty optional fields. */
  values() {
    return this.getRoot() ?? {};
  }

  inputId(path) {
    return `${this.id}-${slug(path || 'root')}`;
  }

  /** Put each error next to the field it names (the closest rendered parent if not shown). */
  showErrors(errors) {
    this.clearErrors();
    const general = [];
    const byWrapper = new Map();
    for (const error of errors) {
      const parts = String(error.field || '').split('.').filter(Boolean);
      let wrapper;
      while (parts.length && !(wrapper = this.wrappers.get(parts.join('.')))) parts.pop();
      if (!wrapper) general.push(error);
      else byWrapper.set(wrapper, [...(byWrapper.get(wrapper) || []), error]);
    }
    for (const [wrapper, list] of byWrapper) {
      const box = wrapper.querySelector(':scope > .error');
      const codes = [...new Set(list.map((e) => e.error || ''))];
      box.hidden = false;
      box.dataset.error = codes.join(' ');
      box.append([...new Set(list.map(errorText))].join('; '), ' ', h('code', {}, codes.join(', ')));
      wrapper.classList.add('invalid');
      wrapper.querySelector('input, select, textarea')?.setAttribute('aria-invalid', 'true');
    }
    if (general.length) this.showFormError(general.map((e) => `${e.field || 'input'}: ${errorText(e)}`).join('; '));
    this.element.querySelector('.invalid input, .invalid select, .invalid textarea')?.focus();
  }

  showFormError(text) {
    this.formError.textContent = text;
    this.formError.hidden = !text;
  }

  clearErrors() {
    this.showFormError('');
    for (const wrapper of this.wrappers.values()) {
      wrapper.classList.remove('invalid');
      const box = wrapper.querySelector(':scope > .error');
      box.replaceChildren();
      box.hidden = true;
      box.removeAttribute('data-error');
      wrapper.querySelector('[aria-invalid]')?.removeAttribute('aria-invalid');
    }
  }

  label(path, schema) {
    const key = path.split('.').pop();
    return this.opt('labels', path) ?? schema.title ?? humanize(key);
  }

  /** A wrapper with label, control, hint and error box; registered for errors. */
  wrap(path, kind, label, control, schema, required) {
    const id = this.inputId(path);
    const hintText = this.opt('hints', path) ?? schema.description;
    const hint = hintText ? h('small', { class: 'hint', id: `${id}-hint` }, hintText) : null;
    const error = h('p', { class: 'error', id: `${id}-error`, hidden: true, 'aria-live': 'polite' });
    const described = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' ');
    control.setAttribute?.('aria-describedby', described);
    const labelEl = h('label', { for: id }, label, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null);
    const wrapper = kind === 'bool'
      ? h('div', { class: 'field field-bool', dataset: { path } }, control, labelEl, hint, error)
      : h('div', { class: `field field-${kind}`, dataset: { path } }, labelEl, control, hint, error);
    this.wrappers.set(path, wrapper);
    return wrapper;
  }

  /** Render one property: {body, get}. */
  render(path, schema, value, required) {
    const initial = value;
    // Output-only (readOnly) and legacy (deprecated) properties are neither shown nor sent.
    if (this.opt('omit', path) || schema?.readOnly || schema?.deprecated) return { body: null, get: () => undefined };
    if (this.opt('hidden', path)) return { body: null, get: () => initial };
    const info = classify(schema);
    const s = info.schema;
    const readonly = this.opt('readonly', path);
    const fixed = (get) => (readonly ? () => initial : get);
    const label = this.label(path, s);
    const id = this.inputId(path);
    const choices = this.opt('choices', path);

    if (info.kind === 'const') return { body: null, get: () => (required ? s.const : undefined) };
    if (info.kind === 'object') {
      return this.renderObject(path, s, value, required, info.nullable, label);
    }
    if (info.kind === 'list') return this.renderList(path, info, value, label);
    if (info.kind === 'bool') {
      const input = h('input', { type: 'checkbox', id, name: path, checked: value === true, disabled: readonly });
      return { body: this.wrap(path, 'bool', label, input, s, false), get: fixed(() => input.checked) };
    }
    if (info.kind === 'enum' || choices) {
      const list = (choices || s.enum).map((c) => (c && typeof c === 'object' ? c : { value: c, label: c === null ? '(none)' : String(c) }));
      const select = h('select', { id, name: path, disabled: readonly },
        required && value !== undefined ? null : h('option', { value: '' }, '—'),
        list.map((c) => h('option', { value: JSON.stringify(c.value), selected: c.value === value }, this.opt('labels', `${path}=${c.value}`) ?? c.label)));
      const get = () => (select.value === '' ? (info.nullable ? null : undefined) : JSON.parse(select.value));
      return { body: this.wrap(path, 'enum', label, select, s, required), get: fixed(get) };
    }
    if (info.kind === 'multi') {
      const chosen = new Set(Array.isArray(value) ? value : []);
      const boxes = info.items.enum.map((v, i) => {
        const box = h('input', { type: 'checkbox', id: `${id}-${i}`, value: v, checked: chosen.has(v), disabled: readonly });
        return { v, box, el: h('span', { class: 'check' }, box, h('label', { for: `${id}-${i}` }, String(v))) };
      });
      const group = h('fieldset', { class: 'field field-multi', id, dataset: { path } },
        h('legend', {}, label), h('div', { class: 'checks' }, boxes.map((b) => b.el)),
        h('p', { class: 'error', id: `${id}-error`, hidden: true }));
      this.wrappers.set(path, group);
      return { body: group, get: fixed(() => boxes.filter((b) => b.box.checked).map((b) => b.v)) };
    }
    if (info.kind === 'lines') {
      const area = h('textarea', { id, name: path, rows: 3, readonly, value: Array.isArray(value) ? value.join('\n') : '' });
      const get = () => area.value.split(/[\s,]+/).filter(Boolean);
      return { body: this.wrap(path, 'lines', label, area, { ...s, description: this.opt('hints', path) ?? `${s.description ? `${s.description.replace(/\.?$/, '.')} ` : ''}One per line.` }, required), get: fixed(get) };
    }
    if (info.kind === 'json') {
      const area = h('textarea', { id, name: path, rows: 4, readonly, value: value === undefined ? '' : JSON.stringify(value, null, 1) });
      const get = () => { if (!area.value.trim()) return undefined; try { return JSON.parse(area.value); } catch { return area.value; } };
      return { body: this.wrap(path, 'json', label, area, s, required), get: fixed(get) };
    }
    // number or string
    const isNumber = info.kind === 'number';
    const secret = /password/i.test(path.split('.').pop());
    const suggestions = this.opt('suggest', path);
    const listId = suggestions ? `${id}-list` : null;
    const input = h('input', {
      type: secret ? 'password' : 'text', id, name: path, readonly,
      inputmode: isNumber ? 'decimal' : null, list: listId, autocomplete: secret ? 'new-password' : 'off',
      value: value === undefined || value === null ? '' : String(value),
      placeholder: this.opt('placeholders', path) ?? (s.default !== undefined ? String(s.default) : null),
    });
    const datalist = suggestions ? h('datalist', { id: listId }, suggestions.map((v) => h('option', { value: v }))) : null;
    const get = () => {
      const text = input.value.trim();
      if (text === '') return info.nullable ? null : undefined;
      if (isNumber) return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
      return input.value;
    };
    const wrapper = this.wrap(path, isNumber ? 'number' : 'string', label, input, s, required);
    if (datalist) wrapper.append(datalist);
    return { body: wrapper, get: fixed(get) };
  }

  renderObject(path, schema, value, required, nullable = false, label = '') {
    const s = flatten(schema);
    const props = s.properties || {};
    const requiredKeys = new Set(s.required || []);
    const order = path === '' ? this.options.order || [] : [];
    const keys = [...order.filter((k) => k in props), ...Object.keys(props).filter((k) => !order.includes(k))];
    const children = keys.map((key) => {
      const childPath = path ? `${path}.${key}` : key;
      return [key, this.render(childPath, props[key], value == null ? undefined : value[key], requiredKeys.has(key))];
    });
    const get = () => {
      const out = {};
      for (const [key, child] of children) {
        const v = child.get();
        if (v !== undefined) out[key] = v;
      }
      return out;
    };
    const bodies = children.map(([, child]) => child.body);
    if (path === '') return { body: h('div', { class: 'fields' }, bodies), get };
    const id = this.inputId(path);
    const error = h('p', { class: 'error', id: `${id}-error`, hidden: true });
    let toggle = null;
    const inner = h('div', { class: 'fields' }, bodies);
    if (nullable) {
      toggle = h('input', { type: 'checkbox', id, checked: value !== null && value !== undefined });
      inner.hidden = !toggle.checked;
      toggle.addEventListener('change', () => { inner.hidden = !toggle.checked; });
    }
    const legend = h('legend', {}, toggle ? [toggle, ' ', h('label', { for: id }, label)] : label);
    const fieldset = h('fieldset', { class: 'field field-object', dataset: { path } }, legend, error, inner);
    this.wrappers.set(path, fieldset);
    return { body: fieldset, get: () => (toggle && !toggle.checked ? null : get()) };
  }

  renderList(path, info, value, label) {
    const items = info.items;
    const id = this.inputId(path);
    const rowsBox = h('div', { class: 'list-rows' });
    const error = h('p', { class: 'error', id: `${id}-error`, hidden: true });
    let rows = [];
    const draw = (values) => {
      for (const key of [...this.wrappers.keys()]) if (key.startsWith(`${path}.`)) this.wrappers.delete(key);
      rows = values.map((item, index) => {
        const rendered = this.renderObject(`${path}.${index}`, items, item, true, false, `${label} ${index + 1}`);
        const remove = h('button', { type: 'button', class: 'secondary small', onclick: () => draw(current().filter((_, i) => i !== index)) },
          'Remove', h('span', { class: 'sr-only' }, ` ${label} ${index + 1}`));
        rendered.body.querySelector('legend').append(' ', remove);
        return rendered;
      });
      rowsBox.replaceChildren(...rows.map((r) => r.body));
    };
    const current = () => rows.map((r) => r.get());
    const start = Array.isArray(value) ? value : [];
    draw(start.length || !(info.schema.minItems > 0) ? start : [{}]);
    const add = h('button', { type: 'button', class: 'secondary small', id: `${id}-add`, onclick: () => draw([...current(), {}]) }, `Add ${this.opt('itemLabels', path) ?? 'item'}`);
    const fieldset = h('fieldset', { class: 'field field-list', id, dataset: { path } },
      h('legend', {}, label), error, rowsBox, add);
    this.wrappers.set(path, fieldset);
    return { body: fieldset, get: current };
  }
}

/** The values of `object` at the paths of a form (for prefilling from a list row). */
export function pick(object, paths) {
  const out = {};
  for (const path of paths) {
    const v = getPath(object, path);
    if (v !== undefined) out[path] = v;
  }
  return out;
}
