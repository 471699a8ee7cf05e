// The console's shell: sign-in with a token, the hash router, the confirmation dialog and the status line.
import { APIError, get, token } from './api.js';
import { clear, h } from './dom.js';
import { deploymentPage, deploymentsPage } from './deployments.js';
import { nodePage, servicePage, servicesPage } from './inventory.js';
import { cleanupPage, cleanupsPage } from './cleanups.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const signout = document.getElementById('signout');
const statusLine = document.getElementById('status');

let identity = null; // GET /api/v1/whoami's answer for the token in use
let current = null; // the page shown: an AbortController its requests, streams and timers stop with

function status(message) {
  statusLine.textContent = message || '';
}

// settlePending answers the question the dialog asks now, if any (see confirm).
let settlePending = null;

// confirm asks in a modal dialog (focus stays in it; Escape says no) and resolves true on yes. One
// question at a time: each settles once, from its own buttons or Escape (the cancel event, fired as
// the key is handled), and removes its listeners then. A close event settles it only while the dialog
// is closed: the event is dispatched after the dialog closed, so an earlier question's can arrive when
// the next is already open (Escape, then a quick click asks again).
function confirm(title, text, yes) {
  if (settlePending) settlePending(false);
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  const yesButton = document.getElementById('confirm-yes');
  const noButton = document.getElementById('confirm-no');
  yesButton.textContent = yes;
  return new Promise((resolve) => {
    const settle = (answer) => {
      yesButton.removeEventListener('click', onYes);
      noButton.removeEventListener('click', onNo);
      dialog.removeEventListener('cancel', onNo);
      dialog.removeEventListener('close', onClose);
      settlePending = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onYes = () => settle(true);
    const onNo = () => settle(false);
    const onClose = () => {
      if (!dialog.open) settle(false);
    };
    settlePending = settle;
    yesButton.addEventListener('click', onYes);
    noButton.addEventListener('click', onNo);
    dialog.addEventListener('cancel', onNo);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
    noButton.focus();
  });
}

function loginPage(message) {
  nav.hidden = true;
  signout.hidden = true;
  who.textContent = '';
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'token-help' });
  const error = h('p', { id: 'login-error', class: 'error', role: 'alert' }, message || '');
  const form = h('form', { class: 'login', onsubmit: async (e) => {
    e.preventDefault();
    token.set(input.value.trim());
    if (await signIn()) route();
  } },
  h('h1', null, 'Sign in to nodeexec'),
  h('label', { for: 'token' }, 'API token'),
  input,
  h('p', { id: 'token-help', class: 'muted' }, 'A token from serve\'s tokens file (read, or deploy to also roll back and cancel). It stays in this tab only.'),
  h('button', { type: 'submit', id: 'signin' }, 'Sign in'),
  error);
  clear(main).append(form);
  input.focus();
}

// signIn learns what the token may do; a wrong token goes back to the sign-in form, saying why.
async function signIn() {
  try {
    identity = await get('/api/v1/whoami');
  } catch (e) {
    identity = null;
    const had = token.get() !== '';
    token.clear();
    const why = !had && e instanceof APIError && e.status === 401 ? '' : e instanceof APIError && e.status === 401 ? 'That token was refused: ' + e.message + '. Check it and try again.'
      : e instanceof APIError && e.status === 403 ? 'That token cannot read deployments (it needs the read or deploy scope): ' + e.message
        : e.message;
    loginPage(why);
    return false;
  }
  nav.hidden = false;
  signout.hidden = !identity.auth;
  who.textContent = identity.auth ? `${identity.name} (${identity.scope})` : 'no tokens configured (loopback only)';
  return true;
}

const routes = [
  [/^#\/deployments\/([^/?]+)$/, deploymentPage],
  [/^#\/deployments(?:\?(.*))?$/, deploymentsPage],
  [/^#\/services\/([^/?]+)$/, servicePage],
  [/^#\/services$/, servicesPage],
  [/^#\/nodes\/([^/?]+)\/([^/?]+)$/, nodePage],
  [/^#\/cleanups\/([^/?]+)$/, cleanupPage],
  [/^#\/cleanups$/, cleanupsPage],
];

async function route() {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  status('');
  if (!identity) {
    if (!(await signIn())) return;
  }
  const hash = location.hash || '#/deployments';
  for (const a of nav.querySelectorAll('a')) {
    a.toggleAttribute('aria-current', hash.startsWith(a.getAttribute('href')));
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
  const found = routes.find(([re]) => re.test(hash));
  clear(main);
  if (!found) {
    main.append(h('h1', null, 'Not found'), h('p', null, 'No page at ', h('code', null, hash), '. ', h('a', { href: '#/deployments' }, 'Deployments')));
    return;
  }
  const args = hash.match(found[0]).slice(1).map((a) => (a === undefined ? '' : decodeURIComponent(a)));
  const ctx = {
    main, signal, status, confirm,
    canDeploy: identity.scope === 'deploy',
    // every runs fn each ms until the page is left.
    every(ms, fn) {
      const t = setInterval(fn, ms);
      signal.addEventListener('abort', () => clearInterval(t), { once: true });
    },
    failed(e) {
      if (signal.aborted || e.name === 'AbortError') return;
      if (e instanceof APIError && e.status === 401) {
        identity = null;
        token.clear();
        loginPage('The server no longer accepts this token: ' + e.message);
        return;
      }
      status('Error: ' + e.message);
    },
  };
  try {
    await found[1](ctx, ...args);
  } catch (e) {
    ctx.failed(e);
  }
  if (!signal.aborted) main.focus({ preventScroll: true });
}

signout.addEventListener('click', () => {
  token.clear();
  identity = null;
  if (current) current.abort();
  loginPage('Signed out.');
});
window.addEventListener('hashchange', route);
route();
