// Cleanup passes: the list, newest first, and one pass node by node.
import { get } from './api.js';
import { badge, between, clear, count, facts, h, link, nodeLink, table, when } from './dom.js';

const passLink = (id) => link('#/cleanups/' + encodeURIComponent(id), id);

function inState(nodes, state) {
  return (nodes || []).filter((n) => n.state === state).length;
}

export async function cleanupsPage(ctx) {
  const holder = h('div');
  ctx.main.append(h('h1', null, 'Cleanup passes'), holder, h('p', { class: 'muted' }, 'Newest first, the newest 50; refreshed every 10 seconds while shown.'));
  const refresh = async () => {
    const list = await get('/api/v1/cleanups?limit=50', ctx.signal);
    clear(holder).append(list.cleanups.length === 0 ? h('p', null, 'No cleanup passes yet.') : table(count(list.cleanups.length, 'pass', 'passes'),
      ['Pass', 'Trigger', 'State', 'Started', 'Duration', 'Cleaned', 'Skipped', 'Failed', 'Deployments pruned'],
      list.cleanups.map((c) => h('tr', { 'data-id': c.id },
        h('td', { class: 'mono' }, passLink(c.id)),
        h('td', null, c.trigger, c.token ? ` (${c.token})` : ''),
        h('td', null, badge(c.state)),
        h('td', null, when(c.started_at)),
        h('td', { class: 'num' }, between(c.started_at, c.finished_at)),
        h('td', { class: 'num' }, inState(c.nodes, 'cleaned')),
        h('td', { class: 'num' }, inState(c.nodes, 'skipped')),
        h('td', { class: 'num' }, inState(c.nodes, 'failed')),
        h('td', { class: 'num' }, c.pruned ? c.pruned.deployments : 0))), { id: 'cleanups' }));
  };
  await refresh();
  ctx.every(10000, () => refresh().catch(ctx.failed));
}

export async function cleanupPage(ctx, id) {
  const c = await get('/api/v1/cleanups/' + encodeURIComponent(id), ctx.signal);
  const p = c.pruned || {};
  ctx.main.append(h('h1', null, 'Cleanup pass ', h('span', { class: 'mono' }, c.id)),
    facts([
      ['State', badge(c.state)],
      ['Trigger', [c.trigger, c.token ? ` by token ${c.token}` : '', c.tick ? [' at tick ', when(c.tick)] : '']],
      ['Runner', c.runner],
      ['Releases kept per node', c.keep],
      ['Started', when(c.started_at)],
      ['Duration', between(c.started_at, c.finished_at)],
      ['Pruned', `${p.deployments || 0} deployments, ${p.event_chunks || 0} event chunks, ${p.idempotency_keys || 0} idempotency keys, ${p.cleanups || 0} cleanup and ${p.drift_passes || 0} drift passes`],
      ['Pruned records finished before', p.before ? when(p.before) : ''],
      ['Error', c.error ? h('span', { class: 'error' }, c.error) : ''],
    ]),
    (c.nodes || []).length === 0 ? h('p', null, 'No nodes.') : table(count(c.nodes.length, 'node'), ['Service', 'Node', 'State', 'Kept', 'Removed', 'Why'],
      c.nodes.map((n) => [n.service, nodeLink(n.service, n.host), badge(n.state), (n.kept || []).join(', ') || '—', (n.removed || []).join(', ') || '—', n.error || '']),
      { id: 'cleanup-nodes' }));
}
