// Every call the page makes goes through api(), so the API key, once given, rides along on
// all of them, and a 401 anywhere asks for it in one place.

const KEY = 'ecotune.apiKey';
let asking = null; // the open key prompt, shared by every call that hit a 401 meanwhile

export function apiKey() {
  return sessionStorage.getItem(KEY) || '';
}

// api is fetch with the key attached; on a 401 it asks for a key and tries again.
export async function api(path, opts = {}) {
  for (let tries = 0; ; tries++) {
    const key = apiKey();
    const headers = new Headers(opts.headers || {});
    if (key) headers.set('Authorization', 'Bearer ' + key);
    const res = await fetch(path, { ...opts, headers });
    if (res.status !== 401 || tries >= 5) return res;
    // Another call may have got a new key while this one was in flight: use it before asking.
    if (apiKey() === key) await askKey(key ? 'The server refused that key.' : '');
  }
}

// apiJSON calls api and returns the decoded body, throwing the server's message on an error.
export async function apiJSON(path, opts = {}) {
  const res = await api(path, opts);
  return decode(res);
}

// decode returns a response's JSON body or throws an Error carrying its status and message.
export async function decode(res) {
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!res.ok) {
    const msg = body?.error?.message || (typeof body?.error === 'string' ? body.error : '') || text || res.statusText;
    const err = new Error(`${res.status}: ${msg}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

// postJSON sends v as a JSON body.
export function postJSON(path, v, opts = {}) {
  return api(path, { ...opts, method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(v) });
}

function askKey(message) {
  if (asking) return asking;
  const dialog = document.getElementById('key-dialog');
  const input = document.getElementById('key-input');
  const error = document.getElementById('key-error');
  error.textContent = message;
  input.value = '';
  asking = new Promise((resolve) => {
    const form = document.getElementById('key-form');
    const submit = (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      if (!key) { error.textContent = 'Enter the key the server was started with.'; return; }
      sessionStorage.setItem(KEY, key);
      form.removeEventListener('submit', submit);
      dialog.close();
      asking = null;
      resolve();
    };
    form.addEventListener('submit', submit);
  });
  // Escape would close the dialog with no key, and every call behind it would hang.
  dialog.addEventListener('cancel', (ev) => ev.preventDefault());
  dialog.showModal();
  input.focus();
  return asking;
}

// sse yields the data of each server-sent event of a streamed response, as text.
export async function* sse(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
        if (data.length) yield data.join('\n');
      }
    }
  } finally {
    reader.releaseLock();
  }
}

// el makes an element with attributes and children, the page's only templating.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// fmt formats a number with at most digits significant digits, or '–' when absent.
export function fmt(x, digits = 4) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e6)) return x.toExponential(2);
  return String(Number(x.toPrecision(digits)));
}

// duration formats seconds as 1h 02m, 3m 05s or 12s.
export function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m ${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}
