/** Tiny DOM helpers: build elements without a framework. */

/**
 * Make an element. `attrs`: `class`, `on<event>` handlers, `dataset`, DOM properties
 * (`value`, `checked`...) and plain attributes (false/null/undefined are left out).
 * Children: nodes, strings, numbers, arrays of them, or null (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' || key === 'checked' || key === 'selected' || key === 'textContent') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nested arrays, strings, nodes; null skipped). */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** "spam_flag_threshold" -> "Spam flag threshold". */
export function humanize(key) {
  const text = String(key).replace(/[_-]+/g, ' ').trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A CSS-safe id fragment from a dotted path. */
export function slug(text) {
  return String(text).replace(/[^A-Za-z0-9_-]+/g, '-');
}
