// drumbeat console (docs/design.md §11). Everything shown comes from /api/v1 with the
// operator's token (sessionStorage, Bearer header, no cookies). Every value from the API is
// put into the page as text (textContent / text nodes), never as HTML: names, notes and
// errors are operator and attacker input.
'use strict';

(() => {
  const KEY = 'drumbeat.token';
  const REFRESH_MS = 2000;
  const TIMEOUT_MS = 4000;
  const $ = (id) => document.getElementById(id);

  /** An element with attributes and children; strings become text nodes. */
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'onclick') e.addEventListener('click', v);
      else if (k === 'onsubmit') e.addEventListener('submit', v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids.flat(Infinity)) {
      if (k === undefined || k === null) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function token() {
    return sessionStorage.getItem(KEY) || '';
  }

  /** One /api/v1 call; resolves to the JSON document or throws an ApiError. */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (token()) headers.Authorization = 'Bearer ' + token();
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
        signal: abort.signal,
      });
    } catch (e) {
      throw new ApiError(0, 'the beat\'s ops server did not answer');
    } finally {
      clearTimeout(timer);
    }
    let doc = null;
    try {
      doc = await resp.json();
    } catch (_) {
      doc = null;
    }
    if (!resp.ok) {
      const msg = doc && typeof doc.error === 'string' ? doc.error : resp.status + ' ' + resp.statusText;
      throw new ApiError(resp.status, msg);
    }
    return doc;
  }

  // ---- status line ----------------------------------------------------------------------

  let notice = null; // the result of the last action, shown until the next one
  function setStatus(text, kind) {
    const s = $('status');
    s.textContent = text;
    s.className = kind || '';
  }
  function explain(err) {
    if (err.status === 401) {
      return token()
        ? 'The token was refused: ' + err.message + '. Type a valid ops token above.'
        : 'This console needs an ops token: type it above.';
    }
    if (err.status === 403) return 'Not allowed: ' + err.message;
    if (err.status === 0) return 'The beat\'s ops server did not answer; retrying.';
    if (err.status >= 500) return 'The beat could not answer (is Redis or RabbitMQ reachable?): ' + err.message;
    return 'Error ' + err.status + ': ' + err.message;
  }

  // ---- formatting -------------------------------------------------------------------------

  function ago(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return iso || '';
    const s = Math.round((Date.now() - t) / 1000);
    if (s < 0) return 'in ' + -s + ' s';
    if (s < 120) return s + ' s ago';
    if (s < 7200) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }
  function timeEl(iso) {
    return iso ? el('time', { datetime: iso, title: iso }, iso.replace('T', ' ').replace('Z', ' UTC')) : '—';
  }

  // ---- rendering --------------------------------------------------------------------------

  const last = {}; // JSON of what each part last showed: unchanged parts are not redrawn
  function changed(part, value) {
    const json = JSON.stringify(value);
    if (last[part] === json) return false;
    last[part] = json;
    return true;
  }

  function renderCluster(doc) {
    const leader = doc.leader;
    const standbys = (doc.beats || []).filter((b) => !leader || b.id !== leader.id);
    const parts = [
      el('p', { id: 'leader' }, leader
        ? ['Leader: ', el('strong', {}, leader.id), ' (lease ', (leader.lease_ms / 1000).toFixed(1), ' s left)']
        : el('strong', { class: 'state-paused' }, 'No leader: no beat holds the lease, so nothing is scheduled.')),
      el('p', { id: 'standbys' }, 'Standbys: ', standbys.length
        ? standbys.map((b, i) => [i ? ', ' : '', el('strong', {}, b.id), ' (', b.role, ', seen ', ago(b.seen_at), ')'])
        : 'none'),
    ];
    $('cluster').replaceChildren(...parts);
  }

  function renderSchedules(list) {
    const rows = list.map((s) => {
      const paused = s.paused;
      const state = el('td', { class: 'state' },
        el('span', { class: 'state-' + s.state }, s.state),
        paused ? el('div', { class: 'small' }, 'by ', paused.by, ' ', ago(paused.at),
          paused.note ? ['; note: ', el('q', { class: 'note' }, paused.note)] : '') : null);
      const lf = s.last_fire;
      const lo = s.last_outcome;
      const lastCell = el('td', { class: 'last' },
        lf ? [timeEl(lf.fire_time), el('div', { class: 'small raw' }, lf.id)] : 'never',
        lo ? el('div', { class: 'outcome outcome-' + lo.outcome, title: lo.id },
          lo.outcome, ' after ', String(lo.attempts), ' attempt', lo.attempts === 1 ? '' : 's',
          lo.error ? [': ', el('span', { class: 'error' }, lo.error)] : '') : null);
      const skipped = Object.entries((s.counters && s.counters.skipped) || {});
      const actions = el('div', { class: 'actions' },
        s.state === 'paused'
          ? el('button', { type: 'button', class: 'resume', onclick: () => notePanel('resume', s.name) }, 'Resume…')
          : el('button', { type: 'button', class: 'pause', onclick: () => notePanel('pause', s.name) }, 'Pause…'),
        el('button', { type: 'button', class: 'trigger secondary', onclick: () => notePanel('trigger', s.name) }, 'Trigger…'),
        el('button', { type: 'button', class: 'backfill secondary', onclick: () => backfillPanel(s.name) }, 'Backfill…'));
      const tr = el('tr', {},
        el('th', { scope: 'row', class: 'name' }, s.name, el('div', { class: 'small' }, s.source, ' · ', s.task, ' → ', s.queue)),
        el('td', { class: 'trigger' }, s.trigger.description || '', el('div', { class: 'raw' }, s.trigger.kind, ' ', s.trigger.value)),
        el('td', {}, s.timezone),
        state,
        lastCell,
        el('td', { class: 'next' }, s.next_fires && s.next_fires.length ? timeEl(s.next_fires[0]) : 'none'),
        el('td', { class: 'num sent' }, String((s.counters && s.counters.sent) || 0)),
        el('td', { class: 'skipped' }, skipped.length ? skipped.map(([r, n], i) => [i ? ', ' : '', r, ': ', String(n)]) : '0'),
        el('td', {}, actions));
      tr.dataset.name = s.name;
      tr.dataset.state = s.state;
      return tr;
    });
    $('schedules').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 9 }, 'No schedules.'))]));
  }

  function renderWorkers(workers) {
    $('workers').tBodies[0].replaceChildren(...(workers.length
      ? workers.map((w) => el('tr', {}, el('td', {}, w.id), el('td', {}, (w.queues || []).join(', ')),
        el('td', { class: 'num' }, String(w.in_flight)), el('td', {}, ago(w.seen_at))))
      : [el('tr', {}, el('td', { colspan: 4 }, 'No worker seen in the last 30 s.'))]));
  }

  function renderAudit(entries) {
    $('audit').tBodies[0].replaceChildren(...(entries.length
      ? entries.map((a) => el('tr', {}, el('td', {}, timeEl(a.at)), el('td', {}, a.action), el('td', {}, a.target),
        el('td', {}, a.by), el('td', { class: 'note' }, a.note)))
      : [el('tr', {}, el('td', { colspan: 5 }, 'No control actions yet.'))]));
  }

  const DLQ_LIMIT = 1000;
  function renderDlq(letters) {
    const byQueue = new Map();
    for (const d of letters) {
      if (!byQueue.has(d.queue)) byQueue.set(d.queue, []);
      byQueue.get(d.queue).push(d);
    }
    if (!byQueue.size) {
      $('dlq').replaceChildren(el('p', {}, 'No dead letters.'));
      return;
    }
    const blocks = [...byQueue.entries()].map(([queue, ds]) => {
      const reasons = new Map();
      for (const d of ds) reasons.set(d.reason, (reasons.get(d.reason) || 0) + 1);
      const newest = [...ds].sort((a, b) => String(b.dead_at).localeCompare(String(a.dead_at))).slice(0, 5);
      const depth = ds.length >= DLQ_LIMIT ? DLQ_LIMIT + '+' : String(ds.length);
      const block = el('div', { class: 'queue' },
        el('h3', {}, 'Queue ', el('code', {}, queue), ': ', depth, ' dead letter', ds.length === 1 ? '' : 's'),
        el('p', { class: 'small' }, 'Reasons: ', [...reasons.entries()].map(([r, n], i) => [i ? ', ' : '', r, ' ', String(n)])),
        el('div', { class: 'scroll' }, el('table', {},
          el('thead', {}, el('tr', {}, ['Dead at', 'Id', 'Task', 'Reason', 'Attempts', 'Error'].map((h) => el('th', { scope: 'col' }, h)))),
          el('tbody', {}, newest.map((d) => el('tr', {}, el('td', {}, timeEl(d.dead_at)), el('td', { class: 'raw' }, d.id),
            el('td', {}, d.task), el('td', {}, d.reason), el('td', { class: 'num' }, String(d.attempts)),
            el('td', { class: 'error' }, d.error || '')))))),
        el('div', { class: 'actions' },
          el('button', { type: 'button', class: 'replay', onclick: () => dlqPanel('replay', queue, ds.length) }, 'Replay all…'),
          el('button', { type: 'button', class: 'purge danger', onclick: () => dlqPanel('purge', queue, ds.length) }, 'Purge all…')));
      block.dataset.queue = queue;
      return block;
    });
    $('dlq').replaceChildren(...blocks);
  }

  // ---- refresh ----------------------------------------------------------------------------

  let inflight = false;
  async function refresh() {
    if (inflight) return;
    inflight = true;
    try {
      const [list, dlq, audit] = await Promise.allSettled([
        api('GET', '/api/v1/schedules'),
        api('GET', '/api/v1/dlq?limit=' + DLQ_LIMIT),
        api('GET', '/api/v1/audit?limit=20'),
      ]);
      if (list.status === 'rejected') {
        // The last action's result stays in view: a refused action is not hidden by the
        // refresh that follows it.
        const why = explain(list.reason);
        setStatus(notice && notice.kind === 'bad' ? notice.text + ' (' + why + ')' : why, 'bad');
        return;
      }
      const doc = list.value;
      renderCluster(doc);
      if (changed('schedules', doc.schedules)) renderSchedules(doc.schedules || []);
      renderWorkers(doc.workers || []);
      if (dlq.status === 'fulfilled') {
        if (changed('dlq', dlq.value.dead_letters)) renderDlq(dlq.value.dead_letters || []);
      } else {
        last.dlq = null;
        $('dlq').replaceChildren(el('p', { class: 'state-paused' }, 'Dead letters unavailable: ', explain(dlq.reason)));
      }
      if (audit.status === 'fulfilled' && changed('audit', audit.value.entries)) renderAudit(audit.value.entries || []);
      const stamp = 'Updated ' + new Date().toLocaleTimeString() + '.';
      if (notice) setStatus(notice.text + ' ' + stamp, notice.kind);
      else if (!doc.leader) setStatus('No leader: no beat holds the lease, so nothing is being scheduled. ' + stamp, 'warn');
      else setStatus(stamp, '');
    } finally {
      inflight = false;
    }
  }

  /** Runs one action and reports its result in the status line. */
  async function act(what, fn) {
    try {
      const text = await fn();
      notice = { text, kind: '' };
      closePanel();
    } catch (e) {
      notice = { text: what + ' failed: ' + explain(e), kind: 'bad' };
    }
    setStatus(notice.text, notice.kind);
    await refresh();
  }

  // ---- action panels ----------------------------------------------------------------------

  function openPanel(title, ...body) {
    const p = $('panel');
    p.replaceChildren(el('h2', { id: 'panel-title' }, title), ...body);
    p.setAttribute('aria-labelledby', 'panel-title');
    p.hidden = false;
    const first = p.querySelector('input, button');
    if (first) first.focus();
  }
  function closePanel() {
    $('panel').hidden = true;
    $('panel').replaceChildren();
  }
  const cancel = () => el('button', { type: 'button', class: 'secondary', id: 'panel-cancel', onclick: closePanel }, 'Cancel');
  const path = (name, verb) => '/api/v1/schedules/' + encodeURIComponent(name) + '/' + verb;

  const VERBS = {
    pause: ['Pause', 'paused'],
    resume: ['Resume', 'resumed'],
    trigger: ['Trigger', 'triggered'],
  };
  function notePanel(verb, name) {
    const [label, done] = VERBS[verb];
    const note = el('input', { id: 'panel-note', type: 'text', maxlength: 1000 });
    openPanel(label + ' ' + name,
      el('form', {
        onsubmit: (ev) => {
          ev.preventDefault();
          act(label, async () => {
            const doc = await api('POST', path(name, verb), { note: note.value });
            return name + ' ' + done + (doc && doc.id ? ': fire ' + doc.id : '') + '.';
          });
        },
      }, el('label', { for: 'panel-note' }, 'Note (optional, goes to the audit log)'), note,
      el('button', { type: 'submit', id: 'panel-submit' }, label), cancel()));
  }

  function isoSeconds(d) {
    return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
  function backfillPanel(name) {
    const now = new Date();
    const from = el('input', { id: 'backfill-from', type: 'text', value: isoSeconds(new Date(now - 3600e3)) });
    const to = el('input', { id: 'backfill-to', type: 'text', value: isoSeconds(now) });
    const result = el('div', { id: 'backfill-result' });
    const range = () => ({ from: from.value.trim(), to: to.value.trim() });
    const dryRun = async (ev) => {
      ev.preventDefault();
      const r = range();
      try {
        const doc = await api('POST', path(name, 'backfill'), { ...r, dry_run: true });
        const fires = doc.fires || [];
        result.replaceChildren(
          el('p', { id: 'backfill-count' }, fires.length + ' fire' + (fires.length === 1 ? '' : 's') + ' in (' + r.from + ', ' + r.to + ']:'),
          el('ol', { id: 'backfill-fires' }, fires.map((f) => el('li', {}, f))),
          fires.length
            ? el('button', {
              type: 'button', id: 'backfill-confirm', class: 'danger',
              onclick: () => act('Backfill', async () => {
                const done = await api('POST', path(name, 'backfill'), { ...r, dry_run: false });
                return 'Backfill of ' + name + ': ' + done.published + ' fire' + (done.published === 1 ? '' : 's') + ' published.';
              }),
            }, 'Publish these ' + fires.length + ' fires')
            : el('p', {}, 'Nothing to publish.'));
      } catch (e) {
        result.replaceChildren(el('p', { class: 'state-paused', id: 'backfill-error' }, explain(e)));
      }
    };
    openPanel('Backfill ' + name,
      el('form', { onsubmit: dryRun },
        el('label', { for: 'backfill-from' }, 'From (exclusive, RFC 3339)'), from,
        el('label', { for: 'backfill-to' }, 'To (inclusive, not in the future)'), to,
        el('button', { type: 'submit', id: 'backfill-dry-run' }, 'List the fires (dry run)'), cancel()),
      result);
  }

  function dlqPanel(verb, queue, count) {
    const replay = verb === 'replay';
    openPanel((replay ? 'Replay' : 'Purge') + ' the dead letters of ' + queue,
      el('p', {}, replay
        ? 'Re-publish all ' + count + ' dead letters of ' + queue + ' to their queue?'
        : 'Delete all ' + count + ' dead letters of ' + queue + '? This cannot be undone.'),
      el('div', { class: 'actions' },
        el('button', {
          type: 'button', id: 'dlq-confirm', class: replay ? '' : 'danger',
          onclick: () => act(replay ? 'Replay' : 'Purge', async () => {
            const doc = await api('POST', '/api/v1/dlq/' + verb, { queue, all: true });
            return replay ? 'Replayed ' + doc.replayed + ' dead letters.' : 'Purged ' + doc.purged + ' dead letters.';
          }),
        }, replay ? 'Replay ' + count : 'Purge ' + count),
        cancel()));
  }

  // ---- start ------------------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token').value.trim();
      if (t) sessionStorage.setItem(KEY, t);
      $('token').value = '';
      notice = null;
      refresh();
    });
    $('token-forget').addEventListener('click', () => {
      sessionStorage.removeItem(KEY);
      notice = null;
      refresh();
    });
    refresh();
    setInterval(refresh, REFRESH_MS);
  });
})();
