// Building the page from API data: every value becomes a text node or an attribute, never markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// count is "1 node", "3 nodes".
export function count(n, noun, plural) {
  return `${n} ${n === 1 ? noun : plural || noun + 's'}`;
}

// table is a captioned table with column headers; rows are <tr> elements (or arrays of cells).
export function table(caption, headers, rows, attrs) {
  return h('table', attrs,
    h('caption', null, caption),
    h('thead', null, h('tr', null, headers.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, rows.map((r) => (r instanceof Node ? r : h('tr', null, r.map((c) => h('td', null, c)))))));
}

export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

export function link(href, text) {
  return h('a', { href }, text);
}

export const deploymentLink = (id) => link('#/deployments/' + encodeURIComponent(id), id);
export const nodeLink = (service, host, text) => link('#/nodes/' + encodeURIComponent(service) + '/' + encodeURIComponent(host), text || host);
export const serviceLink = (service) => link('#/services/' + encodeURIComponent(service), service);

// badge shows a state in words (colour only helps); data-state lets tests and styles find it.
export function badge(state, attrs) {
  const s = state || 'unknown';
  return h('span', { class: 'state state-' + s, 'data-state': s, ...attrs }, s.replace('_', ' '));
}

const timeFormat = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' });

// when is a time in the viewer's own zone, the exact UTC time in its title.
export function when(iso) {
  if (!iso || iso.startsWith('0001-')) return '—';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: d.toISOString() }, timeFormat.format(d));
}

// duration is a span of milliseconds as people say it: "850 ms", "4.2 s", "3 min 05 s", "2 h 07 min".
export function duration(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms) || ms < 0) return '—';
  if (ms < 1000) return Math.round(ms) + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  const m = Math.floor(s / 60);
  if (m < 60) return m + ' min ' + String(Math.floor(s % 60)).padStart(2, '0') + ' s';
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return hrs + ' h ' + String(m % 60).padStart(2, '0') + ' min';
  return Math.floor(hrs / 24) + ' d ' + (hrs % 24) + ' h';
}

// between is the duration from one time to another, or to now while it has not ended.
export function between(startISO, endISO) {
  if (!startISO) return '—';
  const end = endISO ? Date.parse(endISO) : Date.now();
  return duration(end - Date.parse(startISO));
}
