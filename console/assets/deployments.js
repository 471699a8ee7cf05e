// The deployments: the list (filtered, newest first, refreshed while shown) and one deployment, live
// from its event stream.
import { call, get, query, stream } from './api.js';
import { badge, between, clear, count, deploymentLink, facts, h, nodeLink, serviceLink, table, when } from './dom.js';

const states = ['pending', 'deploying', 'success', 'failed', 'rolled_back'];
const kinds = ['deploy', 'rollback', 'scale', 'restart', 'forget', 'manual', 'apply', 'delete'];
const running = (state) => state === 'pending' || state === 'deploying';

function select(id, label, options, value) {
  return h('label', { for: id }, label,
    h('select', { id, name: id }, h('option', { value: '' }, 'any'),
      options.map((o) => h('option', { value: o, selected: o === value }, o.replace('_', ' ')))));
}

// The API filters by service and state; kind is filtered here, over up to five pages.
async function listDeployments(filter, signal) {
  const found = [];
  let cursor = '';
  for (let page = 0; page < (filter.kind ? 5 : 1); page++) {
    const list = await get('/api/v1/deployments' + query({ service: filter.service, state: filter.state, limit: 100, cursor }), signal);
    found.push(...list.deployments.filter((d) => !filter.kind || d.kind === filter.kind));
    cursor = list.next_cursor;
    if (!cursor || found.length >= 100) break;
  }
  return found.slice(0, 100);
}

function nodesSummary(d) {
  const nodes = d.nodes || [];
  if (nodes.length === 0) return '—';
  const ok = nodes.filter((n) => n.state === 'success' || (d.kind === 'rollback' && n.state === 'rolled_back')).length;
  return `${ok}/${nodes.length}`;
}

function deploymentRow(d) {
  return h('tr', { 'data-id': d.id },
    h('td', { class: 'mono' }, deploymentLink(d.id)),
    h('td', null, d.kind, d.rollback_of ? [' of ', deploymentLink(d.rollback_of)] : ''),
    h('td', null, d.service ? serviceLink(d.service) : '—'),
    h('td', null, d.version || '—'),
    h('td', null, badge(d.state)),
    h('td', { class: 'num' }, nodesSummary(d)),
    h('td', null, when(d.created_at)),
    h('td', { class: 'num' }, between(d.started_at, d.finished_at)),
    h('td', null, d.requested_by || d.token || '—'));
}

export function deploymentsTable(list, caption) {
  return table(caption, ['Deployment', 'Kind', 'Service', 'Version', 'State', 'Nodes ok', 'Created', 'Duration', 'Requested by'],
    list.map(deploymentRow), { id: 'deployments' });
}

export async function deploymentsPage(ctx, rawQuery) {
  const params = new URLSearchParams(rawQuery || '');
  const filter = { service: params.get('service') || '', state: params.get('state') || '', kind: params.get('kind') || '' };
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter deployments', onsubmit: (e) => {
    e.preventDefault();
    const f = new FormData(form);
    location.hash = '#/deployments' + query({ service: f.get('service').trim(), state: f.get('state'), kind: f.get('kind') });
  } },
  h('label', { for: 'service' }, 'Service', h('input', { id: 'service', name: 'service', value: filter.service, size: 18 })),
  select('state', 'State', states, filter.state),
  select('kind', 'Kind', kinds, filter.kind),
  h('button', { type: 'submit' }, 'Filter'));
  const holder = h('div', { 'aria-live': 'off' });
  ctx.main.append(h('h1', null, 'Deployments'), form, holder,
    h('p', { class: 'muted' }, 'Newest first, the newest 100; refreshed every 5 seconds while shown.'));
  let shown = '';
  const refresh = async () => {
    const list = await listDeployments(filter, ctx.signal);
    const key = JSON.stringify(list);
    if (key === shown) return; // unchanged: keep the table (and the keyboard focus in it)
    shown = key;
    clear(holder).append(list.length ? deploymentsTable(list, count(list.length, 'deployment')) : h('p', { id: 'deployments-empty' }, 'No deployments match.'));
  };
  await refresh();
  ctx.every(5000, () => refresh().catch(ctx.failed));
}

// One node's line in the live table, kept from the events.
function nodeState(n) {
  return { host: n.host, state: n.state, from: n.from_version || '', to: n.target_version || '', step: '', retry: '', started: '', ended: '' };
}

export async function deploymentPage(ctx, id) {
  let d = await get('/api/v1/deployments/' + encodeURIComponent(id), ctx.signal);
  const nodes = new Map((d.nodes || []).map((n) => [n.host, nodeState(n)]));
  const summary = h('div', { id: 'summary' });
  const actions = h('div', { class: 'actions', id: 'actions' });
  const nodesHolder = h('section', { 'aria-labelledby': 'nodes-title' }, h('h2', { id: 'nodes-title' }, 'Nodes'));
  const tbody = h('tbody');
  const failures = h('section', { id: 'failures', 'aria-labelledby': 'failures-title', hidden: true });
  ctx.main.append(h('h1', null, 'Deployment ', h('span', { class: 'mono' }, d.id)), summary, actions, nodesHolder, failures);
  if (d.nodes && d.nodes.length) {
    nodesHolder.append(h('table', { id: 'nodes' },
      h('caption', null, 'Each node, live from the deployment\'s events'),
      h('thead', null, h('tr', null, ['Node', 'State', 'Version', 'Current step', 'Retries', 'Duration'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody));
  } else {
    nodesHolder.append(h('p', null, 'This deployment has no nodes (', d.kind, ').'));
  }

  const renderSummary = () => {
    clear(summary).append(facts([
      ['State', badge(d.state, { id: 'deployment-state' })],
      ['Kind', [d.kind, d.rollback_of ? [' of ', deploymentLink(d.rollback_of)] : '', d.target_deployment_id ? [' to ', deploymentLink(d.target_deployment_id)] : '']],
      ['Service', d.service ? serviceLink(d.service) : ''],
      ['Version', d.version],
      ['Platform', d.platform],
      ['Batches', d.batch && d.batch.size ? `${d.batch.size} nodes at a time${d.batch.stop_on_failure ? ', stop on failure' : ''}` : 'all nodes at once'],
      ['Requested by', [d.requested_by || '—', d.token ? ` (token ${d.token})` : '']],
      ['Created', when(d.created_at)],
      ['Started', d.started_at ? when(d.started_at) : ''],
      ['Finished', d.finished_at ? when(d.finished_at) : ''],
      ['Duration', d.started_at ? h('span', { id: 'deployment-duration' }, between(d.started_at, d.finished_at)) : ''],
      ['Part of', d.parent_id ? deploymentLink(d.parent_id) : ''],
      ['Error', d.error ? h('span', { class: 'error' }, d.error) : ''],
    ]));
    if (d.applications && d.applications.length) {
      summary.append(table('Applications', ['Service', 'Version', 'Deployment', 'State'],
        d.applications.map((a) => [serviceLink(a.service), a.version, deploymentLink(a.deployment_id), badge(a.state)])));
    }
  };

  const renderNodes = () => {
    clear(tbody).append(...[...nodes.values()].map((n) => h('tr', { 'data-host': n.host, 'data-state': n.state },
      h('th', { scope: 'row' }, d.service ? nodeLink(d.service, n.host) : n.host),
      h('td', null, badge(n.state)),
      h('td', null, n.from && n.from !== n.to ? `${n.from} → ${n.to}` : n.to || '—'),
      h('td', { class: 'step' }, n.step || '—'),
      h('td', null, n.retry || '—'),
      h('td', { class: 'num' }, between(n.started, n.ended || (running(n.state) ? '' : n.started))))));
  };

  const renderActions = () => {
    clear(actions);
    if (!ctx.canDeploy) return;
    if (running(d.state)) {
      actions.append(h('button', { type: 'button', id: 'cancel', class: 'danger', onclick: () => act('cancel') }, 'Cancel deployment'));
    } else if ((d.kind === 'deploy' || d.kind === 'rollback') && (d.nodes || []).some((n) => n.changed)) {
      actions.append(h('button', { type: 'button', id: 'rollback', onclick: () => act('rollback') }, 'Roll back'));
    }
  };

  const act = async (what) => {
    const text = what === 'rollback'
      ? `Roll back ${d.id}: every node it changed goes back to the version it ran before (${d.service}).`
      : `Cancel ${d.id}: the run stops now, each node reports what it really runs, and the deployment ends failed.`;
    if (!(await ctx.confirm(what === 'rollback' ? 'Roll back this deployment?' : 'Cancel this deployment?', text, what === 'rollback' ? 'Roll back' : 'Cancel it'))) return;
    try {
      const accepted = await call('POST', `/api/v1/deployments/${encodeURIComponent(d.id)}/${what}`, {});
      if (what === 'rollback') {
        ctx.status(`Rollback ${accepted.id} started.`);
        location.hash = '#/deployments/' + encodeURIComponent(accepted.id);
      } else {
        ctx.status(`Cancel of ${d.id} asked; the nodes report back shortly.`);
      }
    } catch (e) {
      ctx.status(`Could not ${what}: ${e.message}`);
    }
  };

  let failuresAsked = false;
  const loadFailures = async () => {
    if (failuresAsked) return;
    failuresAsked = true;
    const logs = await get(`/internal/v1/deploy/logs/${encodeURIComponent(d.id)}` + query({ source: 'events', lines: 1 }), ctx.signal);
    renderFailures(failures, logs.failures || []);
  };

  const onEvent = (type, ev) => {
    const n = ev.node ? nodes.get(ev.node) : null;
    switch (type) {
      case 'deployment':
        d.state = ev.state;
        if (running(ev.state) && !d.started_at && ev.state === 'deploying') d.started_at = ev.time;
        renderSummary();
        renderActions();
        break;
      case 'node':
        if (!n) break;
        n.state = ev.state;
        if (!n.started && ev.state === 'deploying') n.started = ev.time;
        if (!running(ev.state)) { n.ended = ev.time; n.step = ''; }
        { const m = /retry (\d+ of \d+)(?: in (\S+))?/.exec(ev.message || ''); if (m) n.retry = m[2] ? `retry ${m[1]} in ${m[2]}` : `retry ${m[1]}`; }
        renderNodes();
        break;
      case 'step':
        if (!n || !ev.step) break;
        if (!n.started) n.started = ev.step.started || ev.time;
        n.step = ev.step.name + (ev.step.running ? ' (running)' : ev.step.failed ? ' (failed)' : '');
        renderNodes();
        break;
      case 'evidence':
        failuresAsked = false;
        break;
      case 'end':
        d = ev;
        for (const dn of d.nodes || []) {
          const n2 = nodes.get(dn.host) || nodeState(dn);
          n2.state = dn.state;
          n2.from = dn.from_version || n2.from;
          if (!running(dn.state)) n2.step = '';
          nodes.set(dn.host, n2);
        }
        renderSummary();
        renderNodes();
        renderActions();
        if (d.state === 'failed' || (d.nodes || []).some((x) => x.state === 'failed' || x.state === 'rolled_back')) {
          failuresAsked = false;
          loadFailures().catch(ctx.failed);
        }
        break;
    }
  };

  renderSummary();
  renderNodes();
  renderActions();
  ctx.every(1000, () => { if (running(d.state)) { renderNodes(); const el = document.getElementById('deployment-duration'); if (el) el.textContent = between(d.started_at, d.finished_at); } });
  stream(`/api/v1/deployments/${encodeURIComponent(d.id)}/events`, onEvent, ctx.signal).catch(ctx.failed);
}

function renderFailures(section, list) {
  clear(section);
  section.hidden = list.length === 0;
  if (!list.length) return;
  section.append(h('h2', { id: 'failures-title' }, 'Failure evidence'));
  for (const f of list) {
    const ev = f.evidence;
    section.append(h('article', { class: 'failure', 'data-host': f.pod_name },
      h('h3', null, f.pod_name, ' ', badge(f.state)),
      f.error ? h('p', { class: 'error' }, f.error) : '',
      (f.failed_tasks || []).length ? table('Failed tasks, newest last', ['When', 'Task', 'Message'],
        f.failed_tasks.map((t) => [when(t.time), t.name, [t.message || '', t.stderr ? h('pre', null, t.stderr) : '', t.stdout && !t.stderr ? h('pre', null, t.stdout) : '']])) : '',
      ev ? [
        facts([['Failed release', ev.version], ['At', when(ev.at)], ['Reason', ev.reason], ['Kept on the node in', h('code', null, ev.dir)]]),
        h('h4', null, 'Journal excerpt'),
        h('pre', { class: 'journal', tabindex: 0, 'aria-label': `Journal excerpt of ${f.pod_name}` }, (ev.journal || []).join('\n') || '(empty)'),
        (ev.unit_status || []).length ? [h('h4', null, 'Unit status'), h('pre', { class: 'unit-status', tabindex: 0 }, ev.unit_status.join('\n'))] : '',
      ] : ''));
  }
}
