// zfs-sync status page. Reads the REST API under /api/v1 with the admin key kept in this
// tab's sessionStorage, sent only in the X-API-Key header (never in a URL). Every string from
// the API reaches the page through textContent or an attribute value, never as HTML.
'use strict';

(() => {
  const KEY = 'zfs-sync-admin-key';
  const INTERVAL = 'zfs-sync-ui-interval';
  const API = '/api/v1';
  const EVENTS_SHOWN = 50;
  const EVENTS_PAGE = 1000;

  const ui = {};
  const state = {
    timer: null,
    generation: 0, // bumped by "forget key": a load in flight then renders nothing
    loading: null, // the generation a load is under way for
    renders: 0,
    events: [],
    lastEventId: null,
    hostnames: new Map(),
    groups: new Map(),
  };

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  // ---- the key ------------------------------------------------------------------------

  /** Moves a key given as `#key=…` into sessionStorage and out of the address bar. */
  function takeKeyFromFragment() {
    const fragment = location.hash.replace(/^#/, '');
    if (!fragment) return;
    const params = new URLSearchParams(fragment);
    if (!params.has('key')) return;
    const key = params.get('key').trim();
    if (key) sessionStorage.setItem(KEY, key);
    params.delete('key');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }

  const storedKey = () => sessionStorage.getItem(KEY);

  // ---- HTTP -----------------------------------------------------------------------------

  async function api(path, options = {}) {
    const key = storedKey();
    if (!key) throw new ApiError(401, 'no admin key');
    const headers = { 'X-API-Key': key, Accept: 'application/json' };
    let body;
    if (options.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.json);
    }
    const resp = await fetch(API + path, {
      method: options.method || 'GET',
      headers,
      body,
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!resp.ok) {
      const detail = data && typeof data.detail === 'string' ? data.detail : resp.statusText;
      throw new ApiError(resp.status, detail);
    }
    return data;
  }

  // ---- formatting -----------------------------------------------------------------------

  /** A duration in seconds as `45s`, `12m 5s`, `3h 20m`, `2d 4h`; `—` when unknown. */
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let v = Number(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
  }

  function fmtTime(t) {
    if (!t) return '—';
    const d = new Date(t);
    if (Number.isNaN(d.getTime())) return String(t);
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  const statusText = (s) => String(s).replace(/_/g, ' ');
  const host = (id) => (id ? state.hostnames.get(id) || String(id).slice(0, 8) : '—');
  const groupName = (id) => {
    if (!id) return '—';
    const g = state.groups.get(id);
    return g ? g.name : String(id).slice(0, 8);
  };

  // ---- DOM helpers (text only) ----------------------------------------------------------

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const td = (text, cls) => el('td', { class: cls }, text);
  const badge = (cls, text) => el('span', { class: `badge ${cls}` }, text);

  function fill(target, rows, columns, emptyText) {
    target.replaceChildren(
      ...(rows.length ? rows : [el('tr', {}, el('td', { colspan: columns, class: 'empty' }, emptyText))]),
    );
  }

  function showMessage(text) {
    ui.message.textContent = text;
    ui.message.hidden = !text;
  }

  // ---- rendering ------------------------------------------------------------------------

  function renderHosts(health) {
    ui.fleetSummary.textContent =
      `${health.total} hosts: ${health.online} online, ${health.offline} offline, ` +
      `${health.never_seen} never seen`;
    const order = { offline: 0, never_seen: 1, online: 2 };
    const systems = [...health.systems].sort(
      (a, b) => (order[a.status] ?? 3) - (order[b.status] ?? 3) || a.hostname.localeCompare(b.hostname),
    );
    fill(
      ui.hosts,
      systems.map((s) =>
        el(
          'tr',
          { 'data-host': s.system_id },
          td(s.hostname, 'mono'),
          el('td', {}, badge(`h-${s.status}`, statusText(s.status))),
          td(fmtTime(s.last_seen)),
          td(s.seconds_since_last_seen === null ? 'never' : `${fmtDuration(s.seconds_since_last_seen)} ago`),
        ),
      ),
      4,
      'No hosts registered.',
    );
  }

  function edgeRow(e) {
    let why = null;
    if (e.blocked_by) {
      why = el('div', { class: 'muted' }, `by ${statusText(e.blocked_by)}`);
      if (e.blocked_reason) why.append(`: ${e.blocked_reason}`);
      if (e.next_attempt_at) why.append(` (next attempt ${fmtTime(e.next_attempt_at)})`);
    }
    const source = el('td', {}, el('span', { class: 'mono' }, e.source_hostname), ' → ',
      el('span', { class: 'mono' }, e.target_hostname));
    const stale = e.source_stale ? el('div', { class: 'warn' }, 'source stale') : null;
    return el(
      'tr',
      {
        class: `row-${e.status}`,
        'data-edge': [e.group_id, e.dataset, e.source_system_id, e.target_system_id].join('|'),
      },
      td(e.dataset, 'mono'),
      source,
      el('td', { class: 'status' }, badge(`st-${e.status}`, statusText(e.status)), why),
      td(fmtDuration(e.lag_seconds), 'num lag'),
      td(e.lag_snapshots ?? '—', 'num'),
      td(fmtBytes(e.lag_bytes), 'num'),
      el('td', { class: 'num' }, fmtDuration(e.recovery_point_age_seconds), stale),
      td(fmtDuration(e.source_newest_age_seconds), 'num'),
      td(fmtDuration(e.rpo_seconds), 'num'),
      td(fmtTime(e.last_success)),
    );
  }

  function renderGroups(groups, edges) {
    // Groups in the order of their worst edge (the edges come worst first), then the rest.
    const byGroup = new Map();
    for (const e of edges) {
      if (!byGroup.has(e.group_id)) byGroup.set(e.group_id, []);
      byGroup.get(e.group_id).push(e);
    }
    for (const g of groups) if (!byGroup.has(g.id)) byGroup.set(g.id, []);
    const blocks = [];
    for (const [id, rows] of byGroup) {
      const g = state.groups.get(id);
      const counts = {};
      for (const e of rows) counts[e.status] = (counts[e.status] || 0) + 1;
      const summary = Object.entries(counts).map(([s, n]) => `${n} ${statusText(s)}`).join(', ');
      const title = el('h3', { 'data-group': id }, g ? g.name : groupName(id));
      if (g) {
        title.append(el('span', { class: 'muted' },
          ` · RPO ${fmtDuration(g.rpo_seconds)}` +
          (g.hub_system_id ? ` · hub ${host(g.hub_system_id)}` : '') +
          (g.enabled ? '' : ' · disabled') + (summary ? ` · ${summary}` : '')));
      }
      const table = el('table', {},
        el('thead', {}, el('tr', {}, ['Dataset', 'Source → target', 'Status', 'Lag', 'Snapshots behind',
          'Bytes behind', 'Recovery point age', 'Source newest age', 'RPO', 'Last success']
          .map((h) => el('th', {}, h)))),
        el('tbody', {}));
      fill(table.tBodies[0], rows.map(edgeRow), 10,
        g && !g.enabled ? 'The group is disabled.' : 'No edges (no dataset to replicate yet).');
      blocks.push(el('div', { class: 'group' }, title, table));
    }
    ui.groups.replaceChildren(...(blocks.length ? blocks : [el('p', { class: 'empty' }, 'No sync groups.')]));
  }

  /** The plan a resolution would carry out, as a list. */
  function planList(plan) {
    const items = [];
    items.push(el('li', {}, `winner: ${host(plan.winner_system_id)}`));
    for (const l of plan.losers || []) {
      const li = el('li', {}, `${host(l.system_id)} loses`);
      if (l.rollback_to) li.append(`; rolls back to ${l.rollback_to}`);
      if (l.rename_to) li.append(`; renamed aside to ${l.rename_to}`);
      if (l.destroys && l.destroys.length) {
        li.append('; destroys ', el('span', { class: 'warn' }, l.destroys.join(', ')));
      }
      if (l.discards) li.append(el('div', { class: 'warn' }, l.discards));
      const cmds = el('ul', {}, (l.commands || []).map((c) =>
        el('li', {}, el('span', { class: 'muted' }, `${host(c.system_id)}: `), el('code', {}, c.command))));
      li.append(cmds);
      items.push(li);
    }
    if (plan.destructive) items.push(el('li', { class: 'warn' }, 'destructive: applying it needs a confirmed preview'));
    if (plan.refused) items.push(el('li', { class: 'warn' }, `refused: ${plan.refused}`));
    items.push(el('li', { class: 'muted' }, `digest ${String(plan.digest).slice(0, 16)}…`));
    return el('ul', { class: 'plan' }, items);
  }

  async function conflictBlock(c) {
    const g = state.groups.get(c.sync_group_id);
    const head = el('div', {},
      badge(c.status === 'open' ? 'st-breached' : 'st-late', c.status), ' ',
      el('strong', {}, `${groupName(c.sync_group_id)} / `), el('span', { class: 'mono' }, c.dataset),
      ` — ${c.conflict_type} between ${host(c.system_a)} and ${host(c.system_b)}`,
      el('span', { class: 'muted' }, ` (detected ${fmtTime(c.detected_at)}, ${c.occurrences}×)`));
    const block = el('div', { class: 'conflict', 'data-conflict': c.id }, head);
    if (c.reason) block.append(el('div', { class: 'muted' }, c.reason));
    if (c.note) block.append(el('div', {}, `note: ${c.note}`));
    if (c.status !== 'open') {
      block.append(el('div', { class: 'muted' }, 'A resolution is being carried out (see jobs).'));
      return block;
    }
    // The group's own strategy; `manual` needs a winner, so preview `use_newest` instead.
    const groupStrategy = g ? g.conflict_strategy : 'manual';
    const strategy = groupStrategy === 'manual' || groupStrategy === 'ignore' ? 'use_newest' : groupStrategy;
    try {
      const plan = await api(`/conflicts/${encodeURIComponent(c.id)}/resolve`, {
        method: 'POST',
        json: { strategy, dry_run: true },
      });
      block.append(el('div', {}, `Plan preview (${statusText(strategy)}` +
        (strategy !== groupStrategy ? `; the group's strategy is ${groupStrategy}` : '') + '):'),
      planList(plan));
    } catch (err) {
      block.append(el('div', { class: 'warn' }, `No plan with ${statusText(strategy)}: ${err.message}`));
    }
    return block;
  }

  async function renderConflicts(groups) {
    const lists = await Promise.all(groups.map((g) => api(`/conflicts/${encodeURIComponent(g.id)}`)));
    const conflicts = lists.flat();
    const blocks = await Promise.all(conflicts.map(conflictBlock));
    return blocks.length ? blocks : [el('p', { class: 'empty' }, 'No open conflicts.')];
  }

  function renderJobs(jobs, edges) {
    const estimate = new Map(edges.filter((e) => e.job_id).map((e) => [e.job_id, e.lag_bytes]));
    fill(
      ui.jobs,
      jobs.map((j) => {
        const total = estimate.get(j.id);
        const sent = j.bytes ?? 0;
        const progress = el('td', { class: 'num' });
        if (total) {
          progress.append(el('progress', { max: total, value: Math.min(sent, total) }), ' ',
            `${fmtBytes(sent)} of ~${fmtBytes(total)} (${Math.min(100, Math.floor((100 * sent) / total))}%)`);
        } else {
          progress.append(`${fmtBytes(sent)} sent`);
        }
        return el(
          'tr',
          { 'data-job': j.id },
          td(groupName(j.sync_group_id)),
          td(j.dataset, 'mono'),
          td(`${host(j.source_system_id)} → ${host(j.target_system_id)}`),
          td(host(j.runner_system_id)),
          td(j.step === 'transfer' || !j.step ? j.kind : j.step),
          td(j.status + (j.lease_expires_at ? ` until ${fmtTime(j.lease_expires_at)}` : '')),
          progress,
        );
      }),
      7,
      'No job in flight.',
    );
  }

  function detailText(detail) {
    if (detail === null || detail === undefined) return '';
    if (typeof detail !== 'object') return String(detail);
    return Object.entries(detail)
      .map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`)
      .join('; ');
  }

  /** New events since the last one seen (the first call pages through the log). */
  async function fetchEvents(generation) {
    for (;;) {
      const since = state.lastEventId === null ? '' : `&since=${state.lastEventId}`;
      const page = await api(`/events?limit=${EVENTS_PAGE}${since}`);
      if (generation !== state.generation) return;
      if (page.length) {
        state.events.push(...page);
        state.events = state.events.slice(-EVENTS_SHOWN);
        state.lastEventId = page[page.length - 1].id;
      }
      if (page.length < EVENTS_PAGE) return;
    }
  }

  function renderEvents() {
    const newest = [...state.events].reverse();
    fill(
      ui.events,
      newest.map((ev) =>
        el(
          'tr',
          { 'data-event': ev.id },
          td(ev.id, 'num'),
          td(fmtTime(ev.time)),
          el('td', {}, el('code', {}, ev.type)),
          td(groupName(ev.group_id)),
          td(host(ev.system_id)),
          td(ev.dataset ?? '—', 'mono'),
          td(detailText(ev.detail), 'detail'),
        ),
      ),
      7,
      'No events yet.',
    );
  }

  // ---- the cycle ------------------------------------------------------------------------

  function showLogin() {
    ui.dashboard.hidden = true;
    ui.controls.hidden = true;
    ui.login.hidden = false;
    ui.keyInput.value = '';
    ui.keyInput.focus();
  }

  function schedule() {
    clearTimeout(state.timer);
    const seconds = Number(ui.interval.value);
    if (seconds > 0 && storedKey()) state.timer = setTimeout(load, seconds * 1000);
  }

  /** Loads and renders everything once; a load already under way for the same key wins. */
  async function load() {
    clearTimeout(state.timer);
    if (!storedKey()) {
      showLogin();
      return;
    }
    const generation = state.generation;
    if (state.loading === generation) return;
    state.loading = generation;
    try {
      await loadOnce(generation);
    } finally {
      if (state.loading === generation) state.loading = null;
    }
  }

  async function loadOnce(generation) {
    try {
      // One call first: a refused key says so once, not once per section.
      const health = await api('/systems/health/all');
      const [groups, edges, pending, leased] = await Promise.all([
        api('/sync-groups'),
        api('/sync/edges'),
        api('/sync/jobs?status=pending'),
        api('/sync/jobs?status=leased'),
      ]);
      state.hostnames = new Map(health.systems.map((s) => [s.system_id, s.hostname]));
      state.groups = new Map(groups.map((g) => [g.id, g]));
      const conflicts = await renderConflicts(groups);
      await fetchEvents(generation);
      if (generation !== state.generation) return;
      renderHosts(health);
      renderGroups(groups, edges);
      ui.conflicts.replaceChildren(...conflicts);
      renderJobs([...leased, ...pending], edges);
      renderEvents();
      ui.login.hidden = true;
      ui.dashboard.hidden = false;
      ui.controls.hidden = false;
      showMessage('');
      ui.updated.textContent = `updated ${fmtTime(new Date().toISOString())}`;
      state.renders += 1;
      document.body.dataset.rendered = String(state.renders);
    } catch (err) {
      if (generation !== state.generation) return;
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        sessionStorage.removeItem(KEY);
        resetData();
        showMessage(err.status === 401
          ? `The admin key was refused (HTTP 401): ${err.message}. Type it again.`
          : `This key may not read the fleet (HTTP 403, an admin key is needed): ${err.message}`);
        document.body.dataset.keyRefused = String(err.status);
        showLogin();
        return;
      }
      showMessage(`Could not load the status${err instanceof ApiError ? ` (HTTP ${err.status})` : ''}: ${err.message}`);
    }
    schedule();
  }

  function resetData() {
    state.generation += 1;
    state.events = [];
    state.lastEventId = null;
    for (const t of [ui.hosts, ui.groups, ui.conflicts, ui.jobs, ui.events]) t.replaceChildren();
  }

  function forget() {
    clearTimeout(state.timer);
    sessionStorage.removeItem(KEY);
    resetData();
    showMessage('');
    showLogin();
  }

  function start() {
    for (const id of ['message', 'login', 'dashboard', 'controls', 'updated', 'interval', 'hosts',
      'groups', 'conflicts', 'jobs', 'events']) {
      ui[id] = document.getElementById(id);
    }
    ui.fleetSummary = document.getElementById('fleet-summary');
    ui.keyInput = document.getElementById('key-input');
    ui.interval.value = sessionStorage.getItem(INTERVAL) || ui.interval.value;
    ui.interval.addEventListener('change', () => {
      sessionStorage.setItem(INTERVAL, ui.interval.value);
      schedule();
    });
    document.getElementById('refresh').addEventListener('click', load);
    document.getElementById('forget').addEventListener('click', forget);
    document.getElementById('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const key = ui.keyInput.value.trim();
      ui.keyInput.value = '';
      if (!key) return;
      sessionStorage.setItem(KEY, key);
      delete document.body.dataset.keyRefused;
      showMessage('');
      load();
    });
    window.addEventListener('hashchange', () => {
      takeKeyFromFragment();
      load();
    });
    takeKeyFromFragment();
    load();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
