/** The HTTP API of `mailctl serve`: session, CSRF token, actions and tasks. */

let csrfToken = '';

/** An API answer that was not 2xx: `status` and the parsed `body`. */
export class ApiError extends Error {
  constructor(status, body) {
    const text = body && typeof body === 'object' && !Array.isArray(body) ? body.error : '';
    super(text || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }

  /** The NS8 validation list [{field, parameter, value, error}] of a 422, else []. */
  get fieldErrors() {
    return this.status === 422 && Array.isArray(this.body) ? this.body : [];
  }
}

/** Called when any request answers 401 (the app shows the login page). */
export const hooks = { onUnauthorized: () => {} };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Requests that change nothing: safe to send again when the network failed under them. */
const repeatable = (method, path) => method === 'GET' || /^\/api\/actions\/(get|list|report)-/.test(path);

/**
 * fetch(), tried again (twice, 300 ms apart) for a repeatable request that failed before any
 * answer: Chrome aborts requests when the host's interfaces change (a container started).
 */
async function send(method, path, options) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(path, options);
    } catch (error) {
      if (attempt >= 2 || !repeatable(method, path)) throw error;
      await sleep(300);
    }
  }
}

async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken;
  const response = await send(method, path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { error: text.slice(0, 300) }; }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed);
    if (response.status === 401 && path !== '/api/login') hooks.onUnauthorized();
    throw error;
  }
  return parsed;
}

export async function login(username, password) {
  const out = await request('POST', '/api/login', { username, password });
  csrfToken = out.csrf_token;
  return out;
}

/** The current session ({username, csrf_token}) or null. */
export async function session() {
  try {
    const out = await request('GET', '/api/session');
    csrfToken = out.csrf_token;
    return out;
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}

export async function logout() {
  try { await request('POST', '/api/logout', {}); } finally { csrfToken = ''; }
}

let manifestCache = null;
/** ui-manifest.json: routes [{path, title, actions}]. */
export async function manifest() {
  manifestCache ??= await request('GET', '/api/manifest');
  return manifestCache;
}

let actionsCache = null;
/** Every action by name: {name, description, input_schema, output_schema}. */
export async function actions() {
  if (!actionsCache) {
    const list = await request('GET', '/api/actions');
    actionsCache = Object.fromEntries(list.map((a) => [a.name, a]));
  }
  return actionsCache;
}

/** The input schema of one action (read at run time: schemas change with the module). */
export async function inputSchema(name) {
  const all = await actions();
  if (!all[name]) throw new Error(`unknown action ${name}`);
  return all[name].input_schema;
}

/** Run an action: its output, or an ApiError (422 carries the field errors). */
export function run(name, data = {}) {
  return request('POST', `/api/actions/${encodeURIComponent(name)}`, data);
}

/** The module's version (the API document's info.version), or '' if it cannot be read. */
export async function version() {
  try {
    return (await request('GET', '/api/openapi.json')).info?.version || '';
  } catch {
    return '';
  }
}

/** Containers with their state and health. */
export function status() {
  return request('GET', '/api/status');
}

/**
 * Run a long action as a task and wait for it; `onProgress(percent)` while it runs.
 * Resolves with the task's output; a failed task rejects with an ApiError (500-like).
 */
export async function runTask(name, data = {}, onProgress = () => {}) {
  const { id } = await request('POST', `/api/tasks/${encodeURIComponent(name)}`, data);
  for (let delay = 200; ; delay = Math.min(delay * 1.5, 2000)) {
    const task = await request('GET', `/api/tasks/${encodeURIComponent(id)}`);
    onProgress(task.progress ?? 0);
    if (task.status === 'done') return task.output;
    if (task.status === 'failed') {
      let errors = null;
      try { errors = JSON.parse(task.error); } catch { /* a plain reason */ }
      if (task.exit_code === 10 && Array.isArray(errors)) throw new ApiError(422, errors);
      if (Array.isArray(task.output) && task.exit_code === 10) throw new ApiError(422, task.output);
      throw new ApiError(500, { error: task.error || `task failed (exit ${task.exit_code})` });
    }
    await sleep(delay);
  }
}
