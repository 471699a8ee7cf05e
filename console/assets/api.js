// The API as the console calls it: the operator's token from this tab's session storage, sent as a
// bearer token; errors as the API's {error, code}.

const tokenKey = 'nodeexec.token';

export const token = {
  get: () => sessionStorage.getItem(tokenKey) || '',
  set: (v) => sessionStorage.setItem(tokenKey, v),
  clear: () => sessionStorage.removeItem(tokenKey),
};

export class APIError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || '';
  }
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const t = token.get();
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

export async function call(method, path, body, signal) {
  let resp;
  try {
    resp = await fetch(path, {
      method, signal, cache: 'no-store',
      headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new APIError(0, { error: 'nodeexec does not answer (' + e.message + '): is serve running?', code: 'network' });
  }
  let data = null;
  try { data = await resp.json(); } catch { /* an empty or non-JSON body: the status says it */ }
  if (!resp.ok) throw new APIError(resp.status, data);
  return data;
}

export const get = (path, signal) => call('GET', path, undefined, signal);

// query builds "?a=1&b=2" from the entries that have a value.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// stream reads a server-sent event stream through fetch, not EventSource, because EventSource cannot
// send the Authorization header. onEvent(type, data) sees each event; a broken stream resumes after the
// last event it saw (Last-Event-ID), and the "end" event ends it.
export async function stream(path, onEvent, signal) {
  let last = '';
  while (!signal.aborted) {
    let resp;
    try {
      resp = await fetch(path, { signal, cache: 'no-store', headers: headers(last ? { Accept: 'text/event-stream', 'Last-Event-ID': last } : { Accept: 'text/event-stream' }) });
    } catch {
      await pause(2000, signal);
      continue;
    }
    if (!resp.ok) {
      let body = null;
      try { body = await resp.json(); } catch { /* status alone */ }
      throw new APIError(resp.status, body);
    }
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let ev = { type: 'message', data: '', id: '' };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (ev.data) {
              if (ev.id) last = ev.id;
              onEvent(ev.type, JSON.parse(ev.data));
              if (ev.type === 'end') return;
            }
            ev = { type: 'message', data: '', id: '' };
          } else if (!line.startsWith(':')) {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            let v = colon < 0 ? '' : line.slice(colon + 1);
            if (v.startsWith(' ')) v = v.slice(1);
            if (field === 'event') ev.type = v;
            else if (field === 'data') ev.data += (ev.data ? '\n' : '') + v;
            else if (field === 'id') ev.id = v;
          }
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    await pause(2000, signal);
  }
}
