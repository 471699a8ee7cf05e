// The inventory: services (which version runs where, failed, held, drifted), one service's nodes, and
// one node with its history of deployments.
import { get, query } from './api.js';
import { badge, between, clear, count, deploymentLink, facts, h, nodeLink, serviceLink, table, when } from './dom.js';

// allNodes pages through GET /api/v1/nodes (at most 10 pages of 200).
async function allNodes(params, signal) {
  const out = [];
  let cursor = '';
  for (let i = 0; i < 10; i++) {
    const page = await get('/api/v1/nodes' + query({ ...params, limit: 200, cursor }), signal);
    out.push(...page.nodes);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

export async function servicesPage(ctx) {
  const holder = h('div');
  ctx.main.append(h('h1', null, 'Services'), holder, h('p', { class: 'muted' }, 'Refreshed every 10 seconds while shown.'));
  const refresh = async () => {
    const [list, drifted] = await Promise.all([get('/api/v1/services', ctx.signal), allNodes({ drifted: 'true' }, ctx.signal)]);
    const driftCount = {};
    for (const n of drifted) driftCount[n.service] = (driftCount[n.service] || 0) + 1;
    clear(holder).append(list.services.length === 0 ? h('p', null, 'No services yet: deploy one.') : table(count(list.services.length, 'service'),
      ['Service', 'Platform', 'Nodes', 'Versions (where they run)', 'Failed', 'Held now', 'Drifted'],
      list.services.map((s) => h('tr', { 'data-service': s.service },
        h('th', { scope: 'row' }, serviceLink(s.service)),
        h('td', null, s.platform),
        h('td', { class: 'num' }, s.nodes),
        h('td', null, h('ul', { class: 'versions' }, s.versions.map((v) => h('li', null, h('strong', null, v.version || '(none yet)'), ' on ',
          v.hosts.map((host, i) => [i ? ', ' : '', nodeLink(s.service, host)]))))),
        h('td', { class: 'num' }, s.failed ? h('span', { class: 'error' }, s.failed) : 0),
        h('td', { class: 'num' }, s.deploying),
        h('td', { class: 'num' }, driftCount[s.service] || 0))), { id: 'services' }));
  };
  await refresh();
  ctx.every(10000, () => refresh().catch(ctx.failed));
}

export async function servicePage(ctx, service) {
  const nodes = await allNodes({ service }, ctx.signal);
  ctx.main.append(h('h1', null, 'Service ', service),
    h('p', null, h('a', { href: '#/deployments' + query({ service }) }, 'Its deployments')),
    nodes.length === 0 ? h('p', null, 'No nodes.') : table(count(nodes.length, 'node'),
      ['Node', 'Version', 'Previous', 'State', 'Drift', 'Last error', 'Last deployment', 'Updated'],
      nodes.map((n) => h('tr', { 'data-host': n.host },
        h('th', { scope: 'row' }, nodeLink(service, n.host)),
        h('td', null, n.current_version || '—', n.deploying_version ? ` (→ ${n.deploying_version})` : ''),
        h('td', null, n.prev_version || '—'),
        h('td', null, badge(n.state)),
        h('td', null, n.drift ? `${n.drift.kind}: ${n.drift.recorded} → ${n.drift.observed}` : '—'),
        h('td', { class: n.last_error ? 'error' : '' }, n.last_error || '—'),
        h('td', { class: 'mono' }, n.deployment_id ? deploymentLink(n.deployment_id) : '—'),
        h('td', null, when(n.updated_at)))), { id: 'nodes' }));
}

// The node's history: the service's newest deployments (up to 5 pages of 200) that touched it.
export async function nodePage(ctx, service, host) {
  const n = await get(`/api/v1/nodes/${encodeURIComponent(service)}/${encodeURIComponent(host)}`, ctx.signal);
  const history = [];
  let cursor = '';
  for (let i = 0; i < 5; i++) {
    const page = await get('/api/v1/deployments' + query({ service, limit: 200, cursor }), ctx.signal);
    for (const d of page.deployments) {
      const mine = (d.nodes || []).find((x) => x.host === host);
      if (mine) history.push([d, mine]);
    }
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  ctx.main.append(h('h1', null, 'Node ', host, ' of ', serviceLink(service)),
    facts([
      ['State', badge(n.state)],
      ['Version', n.current_version || '—'],
      ['Previous', n.prev_version],
      ['Deploying', n.deploying_version],
      ['Platform', n.platform],
      ['Last deployment', n.deployment_id ? deploymentLink(n.deployment_id) : ''],
      ['Drift', n.drift ? `${n.drift.kind}: recorded ${n.drift.recorded}, found ${n.drift.observed}, since ` : '', n.drift ? when(n.drift.since) : ''],
      ['Last error', n.last_error ? h('span', { class: 'error' }, n.last_error) : ''],
      ['Known since', when(n.created_at)],
      ['Updated', when(n.updated_at)],
    ]),
    h('h2', null, 'History'),
    history.length === 0 ? h('p', null, 'No deployment of this node is on record.') : table(count(history.length, 'deployment') + ' of this node, newest first',
      ['Deployment', 'Kind', 'Version on this node', 'Node state', 'Deployment state', 'Created', 'Duration'],
      history.map(([d, x]) => h('tr', { 'data-id': d.id },
        h('td', { class: 'mono' }, deploymentLink(d.id)),
        h('td', null, d.kind),
        h('td', null, x.from_version && x.from_version !== x.target_version ? `${x.from_version} → ${x.target_version}` : x.target_version || '—'),
        h('td', null, badge(x.state), x.last_error ? h('div', { class: 'error' }, x.last_error) : ''),
        h('td', null, badge(d.state)),
        h('td', null, when(d.created_at)),
        h('td', { class: 'num' }, between(d.started_at, d.finished_at)))), { id: 'history' }));
}
