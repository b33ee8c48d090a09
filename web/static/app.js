// Ferry dashboard. Plain JavaScript, no build step, no dependencies.
//
// Every read and change goes through Ferry's native API with Connect's JSON
// protocol (POST /ferry.v1.<Service>/<Method>), the API any client uses;
// health comes from /readyz, and live rates, latencies and subscription
// totals from the series of /metrics.
// Pages are routed by the URL's hash: #/, #/topics, #/topics/NAME,
// #/subscriptions.
'use strict';

// ---- small helpers ------------------------------------------------------

// el builds an element. Text is always set as text, never as HTML: message
// keys and values are whatever publishers sent.
function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid == null || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

// int64 fields come as strings. Offsets and counts derived from them are
// kept as BigInt: a Number holds integers exactly only up to 2^53, and a
// rounded offset would be shown wrong and read from the wrong place.
const num = (v) => Number(v || 0); // for sizes and small counts
const big = (v) => BigInt(v || 0);
const sumBig = (list, f) => list.reduce((a, x) => a + big(f(x)), 0n);
const fmtInt = (n) => (typeof n === 'number' ? n : big(n)).toLocaleString('en-US');

// b64 encodes bytes for a protobuf JSON bytes field. btoa takes a string
// of char codes; spreading a large array into String.fromCharCode would
// overflow the stack, so it goes a chunk at a time.
function b64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}
const b64text = (text) => b64(new TextEncoder().encode(text));

function fmtBytes(n) {
  n = num(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
}

function fmtRate(r) {
  if (r >= 1000) return (r / 1000).toFixed(r >= 10000 ? 0 : 1) + 'k/s';
  return (r >= 10 ? r.toFixed(0) : r.toFixed(1)) + '/s';
}

// fmtDuration shows a protobuf JSON duration ("3600s") as 1h.
function fmtDuration(d) {
  let s = parseFloat(d);
  if (!s) return '0s';
  const parts = [];
  for (const [unit, len] of [['d', 86400], ['h', 3600], ['m', 60]]) {
    if (s >= len) { parts.push(Math.floor(s / len) + unit); s %= len; }
  }
  if (s) parts.push(s + 's');
  return parts.join('');
}

// parseDuration reads "90s", "15m", "24h", "7d" or "1h30m" into protobuf
// JSON's form ("5400s").
function parseDuration(text) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
  const units = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  let total = 0, used = '', m;
  while ((m = re.exec(text.trim())) !== null) { total += parseFloat(m[1]) * units[m[2]]; used += m[0]; }
  if (!used || used !== text.trim()) throw new Error(`"${text}" is not a duration (use 30m, 24h, 7d)`);
  return total + 's';
}

// parseBytes reads "500MiB", "2GB" or "1048576".
function parseBytes(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(text);
  if (!m) throw new Error(`"${text}" is not a size (use 512MiB, 10GiB)`);
  const unit = (m[2] || 'B').toUpperCase();
  const pow = { B: 0, K: 1, M: 2, G: 3, T: 4 }[unit[0]];
  const base = unit.includes('I') ? 1024 : 1000;
  return String(Math.round(parseFloat(m[1]) * Math.pow(base, pow)));
}

function retentionText(r) {
  if (!r) return 'forever';
  const parts = [];
  if (r.work) parts.push('work (until acknowledged)');
  if (r.maxAge && parseFloat(r.maxAge) > 0) parts.push('age ' + fmtDuration(r.maxAge));
  if (num(r.maxBytes) > 0) parts.push(fmtBytes(r.maxBytes) + ' per partition');
  return parts.length ? parts.join(', ') : 'forever';
}

function kindName(k) {
  return String(k || '').replace('SUBSCRIPTION_KIND_', '').toLowerCase() || 'unspecified';
}

// ---- the API --------------------------------------------------------------

// rpc calls a unary procedure of the native API with Connect's JSON
// protocol, exactly as curl would.
async function rpc(service, method, body) {
  const resp = await fetch(`/ferry.v1.${service}/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body || {}),
  });
  const text = await resp.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (!resp.ok) {
    const err = new Error(`${data.code || resp.status}: ${data.message || text}`);
    err.code = data.code; // Connect's code name, e.g. not_found
    throw err;
  }
  return data;
}

async function listTopics() {
  return (await rpc('TopicService', 'ListTopics', {})).topics || [];
}

// subscriptionLister lists every topic's subscriptions, for a page that
// refreshes them. The API lists one topic's per call, so each refresh
// would cost a call per topic; the lister lists a topic again only when
// it may have changed: when its partitions' offsets or the /metrics
// series of its subscriptions (backlog, in flight, members, deliveries,
// acks, rebalances: what moves when anything shown moves) differ from
// the last listing's, or that listing is older than maxAge ms. A quiet
// topic then costs a call every maxAge, a busy one a call a refresh.
// Without samples (no /metrics) every topic is listed. A topic deleted
// between the calls has none; any other failure is thrown.
function subscriptionLister(maxAge) {
  const cache = new Map(); // topic name -> { sig, at, subs }
  return async (topics, samples, force) => {
    const now = performance.now();
    const lists = await Promise.all(topics.map(async (t) => {
      const sig = samples ? topicSignature(t, samples) : null;
      const c = cache.get(t.name);
      if (!force && c && sig !== null && c.sig === sig && now - c.at < maxAge) return c.subs;
      let subs;
      try {
        subs = (await rpc('SubscriptionService', 'ListSubscriptions', { topic: t.name })).subscriptions || [];
      } catch (e) {
        if (e.code !== 'not_found') throw e;
        subs = [];
      }
      cache.set(t.name, { sig, at: now, subs });
      return subs;
    }));
    const names = new Set(topics.map((t) => t.name));
    for (const name of cache.keys()) if (!names.has(name)) cache.delete(name);
    return lists.flat();
  };
}

// topicSignature is what a topic's listing depends on, as far as the
// topic listing and /metrics tell.
function topicSignature(t, samples) {
  const parts = (t.partitions || []).map((p) => `${p.partition}:${p.startOffset}:${p.endOffset}`);
  const series = samples.filter((m) => m.labels.topic === t.name && m.name.startsWith('ferry_subscription_'))
    .map((m) => m.line);
  return parts.concat(series.sort()).join('\n');
}

// metrics fetches /metrics and parses it (parseMetrics).
async function metrics() {
  const resp = await fetch('/metrics', { headers: { Accept: 'text/plain' } });
  if (!resp.ok) throw new Error('/metrics: ' + resp.status);
  return parseMetrics(await resp.text());
}

// parseMetrics parses the Prometheus text format into samples {name,
// labels, value, line, series}: series is the name with the labels as
// written, which tells one series from another between two scrapes.
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: parseFloat(m[3]), line, series: `${m[1]}{${m[2] || ''}}` });
  }
  return out;
}

const sum = (samples, name) => samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);

// increase is what the counters called name gained between two scrapes,
// summed over their series, each series on its own: one that went down
// started again from 0 (the broker restarted), one new since started from
// 0 (a topic or subscription created), one gone (deleted) gained
// nothing. Summing the series first would take a deleted topic's or
// subscription's count for a restart and show everything the others ever
// counted as gained in one interval.
function increase(cur, prev, name) {
  const before = new Map(prev.filter((m) => m.name === name).map((m) => [m.series, m.value]));
  let gained = 0;
  for (const m of cur) {
    if (m.name !== name) continue;
    const p = before.get(m.series);
    gained += p === undefined || m.value < p ? m.value : m.value - p;
  }
  return gained;
}

// ---- page frame -----------------------------------------------------------

const main = document.getElementById('main');
let leavePage = null; // stops the current page's timers

// every runs fn now and then every ms while the page is shown; a failure
// shows in the page's status line instead of stopping the timer, and the
// next success clears it (unless something else was shown since).
function every(ms, fn, status) {
  let stopped = false, timer = null, shown = null;
  const tick = async () => {
    try {
      await fn();
      if (status && shown !== null && status.className === 'error' && status.textContent === shown) {
        status.className = ''; status.textContent = '';
      }
      shown = null;
    } catch (e) {
      if (status && !stopped) { showError(status, e); shown = status.textContent; }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function showError(status, e) { status.className = 'error'; status.textContent = e.message || String(e); }
function showNotice(status, text) { status.className = 'notice'; status.textContent = text; }

// confirmAction asks in a modal dialog; it resolves true on Confirm.
function confirmAction(text, okLabel) {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  const ok = document.getElementById('confirm-ok');
  const cancel = document.getElementById('confirm-cancel');
  ok.textContent = okLabel || 'Confirm';
  return new Promise((resolve) => {
    const done = (v) => () => { ok.onclick = cancel.onclick = dlg.oncancel = null; dlg.close(); resolve(v); };
    ok.onclick = done(true);
    cancel.onclick = done(false);
    dlg.oncancel = done(false);
    dlg.showModal();
  });
}

async function updateHealth() {
  const badge = document.getElementById('health');
  try {
    const resp = await fetch('/readyz');
    const text = (await resp.text()).trim();
    badge.textContent = resp.ok ? 'ready' : 'not ready: ' + text;
    badge.className = 'badge ' + (resp.ok ? 'ok' : 'bad');
    return resp.ok ? 'ready' : text;
  } catch (e) {
    badge.textContent = 'unreachable';
    badge.className = 'badge bad';
    return 'unreachable';
  }
}

function route() {
  if (leavePage) leavePage();
  leavePage = null;
  let hash = '/';
  try { hash = decodeURIComponent(location.hash.replace(/^#/, '')) || '/'; } catch { /* a malformed hash: the overview */ }
  let page = 'overview', render = overviewPage, arg;
  if (hash === '/topics') { page = 'topics'; render = topicsPage; }
  else if (hash.startsWith('/topics/')) { page = 'topics'; render = messagesPage; arg = hash.slice(8); }
  else if (hash === '/subscriptions') { page = 'subscriptions'; render = subscriptionsPage; }
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === page);
  main.replaceChildren();
  main.dataset.page = render.name;
  leavePage = render(arg);
}

// ---- overview -------------------------------------------------------------

function stat(label, id) {
  return el('div', { class: 'stat' }, el('div', { class: 'label', text: label }), el('div', { class: 'value', id, text: '…' }));
}

function overviewPage() {
  const status = el('p', { id: 'status' });
  const canvas = el('canvas', { id: 'rate-chart', width: 1100, height: 180 });
  const topicRows = el('tbody');
  const latencyCards = LATENCIES.map((l) => el('section', { class: 'card latency' },
    el('h2', { text: l.title }),
    el('div', { class: 'figures' },
      el('span', {}, el('i', { class: 'swatch-p50' }), 'p50 ', el('b', { id: `lat-${l.id}-p50`, text: '–' })),
      el('span', {}, el('i', { class: 'swatch-p99' }), 'p99 ', el('b', { id: `lat-${l.id}-p99`, text: '–' }))),
    el('canvas', { id: `lat-${l.id}-chart`, class: 'small', width: 360, height: 120 }),
    el('p', { class: 'muted note', text: l.note })));
  main.append(
    el('h1', { text: 'Overview' }), status,
    el('div', { class: 'stats' },
      stat('Health', 'stat-health'), stat('Topics', 'stat-topics'), stat('Partitions', 'stat-partitions'),
      stat('Messages stored', 'stat-messages'), stat('Storage', 'stat-storage'),
      stat('Subscriptions', 'stat-subscriptions'), stat('Consumers', 'stat-members'), stat('Backlog', 'stat-backlog')),
    el('section', { class: 'card' },
      el('h2', { text: 'Messages per second' }), canvas,
      el('div', { class: 'legend' },
        el('span', {}, el('i', { class: 'swatch-pub' }), 'published ', el('b', { id: 'rate-published', text: '–' })),
        el('span', {}, el('i', { class: 'swatch-del' }), 'delivered to consumers ', el('b', { id: 'rate-delivered', text: '–' })),
        el('span', { class: 'muted', text: 'from /metrics, every 2 s; Kafka fetches included' }))),
    el('div', { class: 'row' }, latencyCards),
    el('section', { class: 'card' }, el('h2', { text: 'Topics' }),
      el('div', { class: 'scroll' }, el('table', {},
        el('thead', {}, el('tr', {}, el('th', { text: 'Topic' }), el('th', { class: 'num', text: 'Partitions' }),
          el('th', { class: 'num', text: 'Messages' }), el('th', { class: 'num', text: 'Storage' }),
          el('th', { class: 'num', text: 'Subscriptions' }), el('th', { text: 'Retention' }))),
        topicRows))));

  const set = (id, v) => { const e = document.getElementById(id); if (e) e.textContent = v; };
  // The subscriptions' numbers come from the /metrics scrape below (the
  // gauges of every subscription, read by the broker in one go), not from
  // a ListSubscriptions call per topic.
  let samples = null;
  let topics = [];
  const subsOf = (name) => {
    if (!samples) return '…';
    return new Set(samples.filter((m) => m.name === 'ferry_subscription_members' && m.labels.topic === name)
      .map((m) => m.labels.subscription)).size;
  };
  const drawTopics = () => {
    topicRows.replaceChildren(...(topics.length ? topics.map((t) => {
      const ps = t.partitions || [];
      return el('tr', { 'data-topic': t.name },
        el('td', {}, el('a', { href: '#/topics/' + encodeURIComponent(t.name), text: t.name })),
        el('td', { class: 'num', text: ps.length }),
        el('td', { class: 'num messages', text: fmtInt(sumBig(ps, (p) => big(p.endOffset) - big(p.startOffset))) }),
        el('td', { class: 'num', text: fmtBytes(ps.reduce((a, p) => a + num(p.bytes), 0)) }),
        el('td', { class: 'num', text: subsOf(t.name) }),
        el('td', { text: retentionText(t.config && t.config.retention) }));
    }) : [el('tr', {}, el('td', { colspan: 6, class: 'muted', text: 'No topics yet: create one on the Topics page.' }))]));
  };
  const stopStats = every(5000, async () => {
    const [health, list] = await Promise.all([updateHealth(), listTopics()]);
    topics = list;
    const parts = topics.flatMap((t) => t.partitions || []);
    set('stat-health', health);
    set('stat-topics', fmtInt(topics.length));
    set('stat-partitions', fmtInt(parts.length));
    set('stat-messages', fmtInt(sumBig(parts, (p) => big(p.endOffset) - big(p.startOffset))));
    set('stat-storage', fmtBytes(parts.reduce((a, p) => a + num(p.bytes), 0)));
    drawTopics();
  }, status);

  // Rates and latencies are differences of the counters and histogram
  // buckets between two scrapes.
  const points = []; // {t, pub, del}: rates, per second
  const lat = Object.fromEntries(LATENCIES.map((l) => [l.id, []])); // {t, p50, p99}: seconds, null without samples
  let last = null;
  const stopRates = every(2000, async () => {
    samples = await metrics();
    const now = performance.now() / 1000;
    const cur = {
      t: now, samples,
      buckets: Object.fromEntries(LATENCIES.map((l) => [l.id, histograms(samples, l.series)])),
    };
    const subNames = new Set(samples.filter((m) => m.name === 'ferry_subscription_members').map((m) => `${m.labels.topic}\n${m.labels.subscription}`));
    set('stat-subscriptions', fmtInt(subNames.size));
    set('stat-members', fmtInt(sum(samples, 'ferry_subscription_members')));
    set('stat-backlog', fmtInt(sum(samples, 'ferry_subscription_backlog_messages')));
    if (last) {
      const dt = cur.t - last.t;
      const rate = (...names) => names.reduce((a, n) => a + increase(cur.samples, last.samples, n), 0) / dt;
      points.push({ t: now, pub: rate('ferry_published_messages_total'),
        del: rate('ferry_subscription_deliveries_total', 'ferry_ephemeral_deliveries_total', 'ferry_fetched_messages_total') });
      if (points.length > 90) points.shift();
      set('rate-published', fmtRate(points[points.length - 1].pub));
      set('rate-delivered', fmtRate(points[points.length - 1].del));
      for (const l of LATENCIES) {
        const window = bucketDelta(cur.buckets[l.id], last.buckets[l.id]);
        const p = { t: now, p50: quantile(0.5, window), p99: quantile(0.99, window) };
        lat[l.id].push(p);
        if (lat[l.id].length > 90) lat[l.id].shift();
        set(`lat-${l.id}-p50`, fmtSeconds(p.p50));
        set(`lat-${l.id}-p99`, fmtSeconds(p.p99));
      }
    }
    last = cur;
    canvas.dataset.points = points.length;
    draw();
  }, status);
  const draw = () => {
    drawChart(canvas, points, RATE_SERIES, fmtRate);
    for (const l of LATENCIES) {
      const c = document.getElementById(`lat-${l.id}-chart`);
      c.dataset.points = lat[l.id].filter((p) => p.p99 != null).length;
      drawChart(c, lat[l.id], LATENCY_SERIES, fmtSeconds);
    }
    if (topics.length) drawTopics(); // the subscription counts moved
  };
  window.addEventListener('resize', draw);
  return () => { stopStats(); stopRates(); window.removeEventListener('resize', draw); };
}

// LATENCIES are the latency panels of the overview, each from the classic
// buckets of a histogram of /metrics, summed over its labels.
const LATENCIES = [
  { id: 'publish', title: 'Publish latency', series: 'ferry_publish_duration_seconds',
    note: 'publish call to durable (fsync policy), per call' },
  { id: 'e2e', title: 'End-to-end latency', series: 'ferry_end_to_end_latency_seconds',
    note: 'message timestamp to delivery, per message (publishers\u2019 clocks)' },
  { id: 'fsync', title: 'Fsync latency', series: 'ferry_fsync_duration_seconds',
    note: 'each fsync of partitions\u2019 data' },
];
const RATE_SERIES = [{ key: 'del', color: '#1a7f37' }, { key: 'pub', color: '#1f6feb' }];
const LATENCY_SERIES = [{ key: 'p50', color: '#8250df' }, { key: 'p99', color: '#bf3989' }];

// histograms reads a histogram's classic buckets from samples, series by
// series (its labels but le): a Map from the series to its buckets
// [{le, count}] by upper bound, the last +Inf.
function histograms(samples, series) {
  const by = new Map();
  for (const m of samples) {
    if (m.name !== series + '_bucket') continue;
    const key = Object.keys(m.labels).filter((k) => k !== 'le').sort().map((k) => `${k}="${m.labels[k]}"`).join(',');
    if (!by.has(key)) by.set(key, []);
    by.get(key).push({ le: m.labels.le === '+Inf' ? Infinity : parseFloat(m.labels.le), count: m.value });
  }
  for (const bs of by.values()) bs.sort((a, b) => a.le - b.le);
  return by;
}

// bucketDelta is what the buckets of a histogram's series (histograms)
// gained between two scrapes, summed over the series: cumulative counts
// by upper bound. Each series is taken on its own: one new since counts
// from 0, one gone (its topic deleted) counts nothing, and one of which
// any bucket lost observations started again from 0 (the broker
// restarted), so all of its counts are taken as they are. A series taken
// bucket by bucket, or the series summed first, would mix counts since
// the restart (or of the deleted topic) with differences, and the
// buckets would no longer grow with their bound.
function bucketDelta(cur, prev) {
  const own = (bs) => bs.map((b, i) => b.count - (i ? bs[i - 1].count : 0));
  const gained = new Map();
  for (const [key, bs] of cur) {
    const was = prev.get(key);
    let window = bs;
    if (was && was.length === bs.length && was.every((b, i) => b.le === bs[i].le)) {
      const now = own(bs), before = own(was);
      if (now.every((c, i) => c >= before[i])) window = bs.map((b, i) => ({ le: b.le, count: b.count - was[i].count }));
    }
    for (const b of window) gained.set(b.le, (gained.get(b.le) || 0) + b.count);
  }
  return [...gained.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count }));
}

// quantile estimates the q-quantile of cumulative buckets as Prometheus's
// histogram_quantile does: linear within the bucket that holds it, the
// highest finite bound when it falls above. null when there is nothing.
function quantile(q, bs) {
  if (!bs.length) return null;
  const total = bs[bs.length - 1].count;
  if (!(total > 0)) return null;
  const rank = q * total;
  let i = bs.findIndex((b) => b.count >= rank);
  if (i < 0) i = bs.length - 1;
  if (bs[i].le === Infinity) return bs.length > 1 ? bs[bs.length - 2].le : null;
  const lower = i === 0 ? 0 : bs[i - 1].le, below = i === 0 ? 0 : bs[i - 1].count;
  const inBucket = bs[i].count - below;
  return inBucket > 0 ? lower + (bs[i].le - lower) * (rank - below) / inBucket : bs[i].le;
}

function fmtSeconds(s) {
  if (s == null) return '–';
  if (s === 0) return '0';
  if (s < 0.001) return (s * 1000).toFixed(2) + ' ms';
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 1 : 0) + ' ms';
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
  return (s / 60).toFixed(1) + ' min';
}

// drawChart draws series of points ({t, [key]: value or null}) on the
// canvas by hand: a y axis with round steps (labelled with fmt), a time
// axis over the last three minutes. A null value breaks its line.
function drawChart(canvas, points, series, fmt) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 56, right = 10, top = 10, bottom = 24;
  const pw = w - left - right, ph = h - top - bottom;
  const values = points.flatMap((p) => series.map((s) => p[s.key])).filter((v) => v != null);
  let max = Math.max(0, ...values);
  if (!(max > 0)) max = fmt === fmtSeconds ? 0.001 : 1;
  const mag = Math.pow(10, Math.floor(Math.log10(max)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((st) => st * 4 >= max);
  max = step * 4;
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#667085';
  g.strokeStyle = '#e4e7ec';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    g.beginPath(); g.moveTo(left, Math.round(y) + 0.5); g.lineTo(left + pw, Math.round(y) + 0.5); g.stroke();
    g.fillText(fmt(step * i).replace('/s', ''), left - 6, y);
  }
  const span = 180; // seconds shown
  const now = points.length ? points[points.length - 1].t : 0;
  g.textAlign = 'center';
  g.textBaseline = 'top';
  const tick = pw < 500 ? 60 : 30;
  for (let s = 0; s <= span; s += tick) g.fillText(s === 0 ? 'now' : `-${s}s`, left + pw - (pw * s) / span, top + ph + 6);
  if (points.length < 2) {
    g.fillText('collecting…', left + pw / 2, top + ph / 2);
    return;
  }
  for (const { key, color } of series) {
    g.strokeStyle = color;
    g.fillStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    let pen = false;
    points.forEach((p) => {
      if (p[key] == null) { pen = false; return; }
      const x = left + pw - (pw * (now - p.t)) / span, y = top + ph - (ph * p[key]) / max;
      if (pen) g.lineTo(x, y); else { g.moveTo(x, y); g.fillRect(x - 1, y - 1, 2, 2); }
      pen = true;
    });
    g.stroke();
  }
}

// ---- topics ---------------------------------------------------------------

function topicsPage() {
  const status = el('p', { id: 'status' });
  const rows = el('tbody', { id: 'topic-rows' });
  const name = el('input', { id: 'topic-name', name: 'name', required: true, placeholder: 'orders.eu.created', size: 28, pattern: '[A-Za-z0-9._\\-]{1,249}' });
  const partitions = el('input', { id: 'topic-partitions', type: 'number', min: 1, value: 1, size: 4 });
  const retention = el('select', { id: 'topic-retention' },
    el('option', { value: 'forever', text: 'keep forever' }), el('option', { value: 'age', text: 'by age' }),
    el('option', { value: 'bytes', text: 'by size' }), el('option', { value: 'work', text: 'work queue (until acknowledged)' }));
  const limit = el('input', { id: 'topic-retention-limit', placeholder: '7d or 10GiB', size: 12 });
  const form = el('form', { class: 'inline', id: 'create-topic' },
    el('label', {}, 'Name', name), el('label', {}, 'Partitions', partitions),
    el('label', {}, 'Retention', retention), el('label', {}, 'Age or size', limit),
    el('button', { class: 'primary', type: 'submit', text: 'Create topic' }));

  const refresh = async () => {
    const topics = await listTopics();
    rows.replaceChildren(...(topics.length ? topics.map(topicRow) : [el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'No topics yet.' }))]));
  };
  const topicRow = (t) => {
    const ps = t.partitions || [];
    const cfg = t.config || {};
    return el('tr', { 'data-topic': t.name },
      el('td', {}, el('a', { href: '#/topics/' + encodeURIComponent(t.name), text: t.name })),
      el('td', { class: 'num', text: ps.length }),
      el('td', { class: 'mono' }, ps.map((p) => el('div', { text: `p${p.partition}: ${fmtInt(p.startOffset)} … ${fmtInt(p.endOffset)}` }))),
      el('td', { class: 'num' }, ps.map((p) => el('div', { text: `${fmtBytes(p.bytes)} · ${p.segments} seg` }))),
      el('td', { text: retentionText(cfg.retention) }),
      el('td', { text: cfg.fsync || 'default' }),
      el('td', { text: t.created ? new Date(t.created).toLocaleString() : '' }),
      el('td', {}, el('button', {
        class: 'danger', type: 'button', 'data-delete': t.name, text: 'Delete',
        onclick: async () => {
          if (!await confirmAction(`Delete topic "${t.name}" with its ${fmtInt(sumBig(ps, (p) => big(p.endOffset) - big(p.startOffset)))} messages and its subscriptions? This cannot be undone.`, 'Delete topic')) return;
          try {
            await rpc('TopicService', 'DeleteTopic', { name: t.name });
            showNotice(status, `Deleted topic ${t.name}.`);
            await refresh();
          } catch (e) { showError(status, e); }
        },
      })));
  };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const config = { partitions: parseInt(partitions.value, 10) || 1 };
      if (retention.value === 'age') config.retention = { maxAge: parseDuration(limit.value) };
      if (retention.value === 'bytes') config.retention = { maxBytes: parseBytes(limit.value) };
      if (retention.value === 'work') config.retention = { work: true };
      const r = await rpc('TopicService', 'CreateTopic', { name: name.value.trim(), config });
      showNotice(status, `Created topic ${r.topic.name}.`);
      name.value = '';
      await refresh();
    } catch (e) { showError(status, e); }
  });

  main.append(el('h1', { text: 'Topics' }),
    el('section', { class: 'card' }, el('h2', { text: 'Create a topic' }), form), status,
    el('section', { class: 'card scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, ['Topic', 'Partitions', 'Offsets (start … end)', 'Size', 'Retention', 'Fsync', 'Created', ''].map((h, i) =>
        el('th', { class: i === 1 || i === 3 ? 'num' : null, text: h })))),
      rows)));
  return every(5000, refresh, status);
}

// ---- a topic's messages ---------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true });

function b64bytes(s) {
  const bin = atob(s || '');
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function hexDump(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = Array.from(bytes.subarray(i, i + 16));
    lines.push(i.toString(16).padStart(6, '0') + '  ' + row.map((b) => b.toString(16).padStart(2, '0')).join(' ').padEnd(48) +
      '  ' + row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join(''));
  }
  return lines.join('\n');
}

// render shows bytes as asked: text, JSON (pretty), hex, or auto (JSON if
// it parses, else text if it is UTF-8 without control characters, else hex).
function render(bytes, format) {
  let text = null;
  try { text = utf8.decode(bytes); } catch { /* not UTF-8 */ }
  if (format === 'hex' || (text === null && format !== 'text')) return { kind: 'hex', text: hexDump(bytes) };
  if (format === 'json' || format === 'auto') {
    try {
      const parsed = JSON.parse(text);
      // JSON.parse rounds integers past 2^53 (64-bit ids): show such a
      // document as it came rather than with changed numbers.
      if (/(^|[^\d.eE+-])-?\d{16,}/.test(text)) return { kind: 'json (as sent: large numbers)', text };
      return { kind: 'json', text: JSON.stringify(parsed, null, 2) };
    } catch { /* not JSON */ }
    if (format === 'json') return { kind: 'text (not JSON)', text };
  }
  if (format === 'auto' && /[\x00-\x08\x0e-\x1f]/.test(text)) return { kind: 'hex', text: hexDump(bytes) };
  return { kind: 'text', text: text === null ? new TextDecoder().decode(bytes) : text };
}

function messagesPage(topic) {
  const status = el('p', { id: 'status' });
  const info = el('p', { class: 'muted', id: 'topic-info' });
  const partition = el('select', { id: 'read-partition' });
  const from = el('select', { id: 'read-from' },
    el('option', { value: 'earliest', text: 'earliest' }), el('option', { value: 'last', text: 'last N' }),
    el('option', { value: 'offset', text: 'offset' }), el('option', { value: 'time', text: 'time' }));
  const offset = el('input', { id: 'read-offset', type: 'number', min: 0, value: 0, size: 8 });
  const time = el('input', { id: 'read-time', type: 'datetime-local', step: 1 });
  const count = el('input', { id: 'read-count', type: 'number', min: 1, max: 1000, value: 50, size: 5 });
  const format = el('select', { id: 'read-format' }, ['auto', 'text', 'json', 'hex'].map((f) => el('option', { value: f, text: f })));
  const rows = el('tbody', { id: 'message-rows' });
  const more = el('button', { type: 'button', id: 'read-next', text: 'Next page', disabled: true });
  const readForm = el('form', { class: 'inline', id: 'read-form' },
    el('label', {}, 'Partition', partition), el('label', {}, 'From', from), el('label', {}, 'Offset', offset),
    el('label', {}, 'Time', time), el('label', {}, 'Messages', count), el('label', {}, 'Show values as', format),
    el('button', { class: 'primary', type: 'submit', text: 'Read' }), more);

  const pubPartition = el('select', { id: 'pub-partition' }, el('option', { value: '', text: 'by key / next' }));
  const pubKey = el('input', { id: 'pub-key', size: 18, placeholder: 'optional' });
  const pubHeaders = el('textarea', { id: 'pub-headers', rows: 3, cols: 28, placeholder: 'name: value, one a line' });
  const pubValue = el('textarea', { id: 'pub-value', rows: 3, cols: 50, placeholder: '{"hello": "ferry"}' });
  const pubForm = el('form', { class: 'inline', id: 'publish-form' },
    el('label', {}, 'Partition', pubPartition), el('label', {}, 'Key', pubKey),
    el('label', {}, 'Headers', pubHeaders), el('label', {}, 'Value (text)', pubValue),
    el('button', { class: 'primary', type: 'submit', text: 'Publish' }));

  let shown = []; // the messages of the last read, to re-render on a format change
  let nextOffset = null;

  const describe = async () => {
    const t = (await rpc('TopicService', 'DescribeTopic', { name: topic })).topic;
    const ps = t.partitions || [];
    info.textContent = `${ps.length} partition${ps.length === 1 ? '' : 's'} · ` +
      ps.map((p) => `p${p.partition}: ${fmtInt(p.startOffset)} … ${fmtInt(p.endOffset)}`).join(' · ') +
      ` · retention ${retentionText(t.config && t.config.retention)}`;
    if (partition.options.length !== ps.length) {
      partition.replaceChildren(...ps.map((p) => el('option', { value: p.partition, text: p.partition })));
      pubPartition.replaceChildren(pubPartition.options[0], ...ps.map((p) => el('option', { value: p.partition, text: p.partition })));
    }
    return t;
  };

  const draw = () => {
    rows.replaceChildren(...(shown.length ? shown.map((m) => {
      const v = render(b64bytes(m.value), format.value);
      const key = m.key ? render(b64bytes(m.key), format.value === 'hex' ? 'hex' : 'text').text : '';
      return el('tr', { 'data-offset': m.offset },
        el('td', { class: 'num mono', text: `${m.partition}/${m.offset}` }),
        el('td', { class: 'mono', text: m.timestamp ? new Date(m.timestamp).toISOString().replace('T', ' ').replace('Z', '') : '' }),
        el('td', {}, el('pre', { class: 'msg-key', text: key })),
        el('td', {}, (m.headers || []).map((h) => el('div', { class: 'mono msg-header', text: `${h.key}: ${render(b64bytes(h.value), 'text').text}` }))),
        el('td', {}, el('span', { class: 'muted', text: v.kind }), el('pre', { class: 'msg-value', text: v.text })));
    }) : [el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No messages here.' }))]));
  };

  const read = async (startAt) => {
    const req = { topic, partition: parseInt(partition.value || '0', 10), maxMessages: parseInt(count.value, 10) || 50 };
    if (startAt != null) req.offset = String(startAt);
    else if (from.value === 'earliest') req.earliest = true;
    else if (from.value === 'offset') req.offset = String(offset.value || 0);
    else if (from.value === 'time') {
      if (!time.value) throw new Error('pick a time to read from');
      req.time = new Date(time.value).toISOString();
    } else { // last N: from N before the end, not before the start
      const t = await describe();
      const p = (t.partitions || []).find((q) => String(q.partition) === String(req.partition)) || {};
      const from = big(p.endOffset) - BigInt(req.maxMessages);
      req.offset = String(from > big(p.startOffset) ? from : big(p.startOffset));
    }
    const r = await rpc('ReadService', 'Read', req);
    shown = r.messages || [];
    nextOffset = big(r.nextOffset);
    more.disabled = nextOffset >= big(r.highWatermark);
    draw();
    showNotice(status, `Partition ${req.partition}: ${shown.length} message${shown.length === 1 ? '' : 's'}, offsets ${fmtInt(r.startOffset)} … ${fmtInt(r.highWatermark)} stored.`);
  };

  readForm.addEventListener('submit', (ev) => { ev.preventDefault(); read().catch((e) => showError(status, e)); });
  more.addEventListener('click', () => read(nextOffset).catch((e) => showError(status, e)));
  format.addEventListener('change', draw);
  pubForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const msg = { text: pubValue.value };
      if (pubKey.value) msg.key = b64text(pubKey.value);
      msg.headers = pubHeaders.value.split('\n').filter((l) => l.trim()).map((l) => {
        const i = l.indexOf(':');
        if (i < 1) throw new Error(`header "${l}" needs "name: value"`);
        return { key: l.slice(0, i).trim(), value: b64text(l.slice(i + 1).trim()) };
      });
      const req = { topic, messages: [msg] };
      if (pubPartition.value !== '') req.partition = parseInt(pubPartition.value, 10);
      const res = (await rpc('PublishService', 'Publish', req)).results[0];
      await describe();
      partition.value = String(res.partition);
      from.value = 'last';
      await read();
      showNotice(status, `Published to partition ${res.partition} at offset ${res.offset}${res.duplicate ? ' (duplicate)' : ''}.`);
    } catch (e) { showError(status, e); }
  });

  main.append(
    el('h1', {}, el('a', { href: '#/topics', text: 'Topics' }), ' / ', el('span', { id: 'topic-title', text: topic })), info, status,
    el('section', { class: 'card' }, el('h2', { text: 'Browse' }), readForm),
    el('section', { class: 'card scroll' }, el('table', { class: 'messages' },
      el('thead', {}, el('tr', {}, ['Partition/offset', 'Time (UTC)', 'Key', 'Headers', 'Value'].map((h) => el('th', { text: h })))),
      rows)),
    el('section', { class: 'card' }, el('h2', { text: 'Publish a test message' }), pubForm));
  describe().then(() => read()).catch((e) => showError(status, e));
  return null;
}

// ---- subscriptions --------------------------------------------------------

function subscriptionsPage() {
  const status = el('p', { id: 'status' });
  const rows = el('tbody', { id: 'sub-rows' });
  const seekCard = el('section', { class: 'card', id: 'seek-card', hidden: true });

  const subTopic = el('select', { id: 'sub-topic' });
  const subName = el('input', { id: 'sub-name', required: true, size: 20, placeholder: 'workers' });
  const subKind = el('select', { id: 'sub-kind' },
    el('option', { value: 'SUBSCRIPTION_KIND_QUEUE', text: 'queue' }), el('option', { value: 'SUBSCRIPTION_KIND_STREAM', text: 'stream' }));
  const subStart = el('select', { id: 'sub-start' },
    el('option', { value: 'START_POSITION_LATEST', text: 'latest' }), el('option', { value: 'START_POSITION_EARLIEST', text: 'earliest' }));
  const createForm = el('form', { class: 'inline', id: 'create-sub' },
    el('label', {}, 'Topic', subTopic), el('label', {}, 'Name', subName), el('label', {}, 'Kind', subKind),
    el('label', {}, 'Start at', subStart), el('button', { class: 'primary', type: 'submit', text: 'Create subscription' }));

  const listSubscriptions = subscriptionLister(30000);
  const refresh = async (force) => {
    const [topics, samples] = await Promise.all([listTopics(), metrics().catch(() => null)]);
    const subs = await listSubscriptions(topics, samples, force === true);
    const names = topics.map((t) => t.name);
    if ([...subTopic.options].map((o) => o.value).join('\n') !== names.join('\n')) {
      const keep = subTopic.value;
      subTopic.replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
      if (names.includes(keep)) subTopic.value = keep;
    }
    const dead = (s) => (samples || []).filter((m) => m.name === 'ferry_subscription_dead_letters_total' &&
      m.labels.topic === s.topic && m.labels.subscription === s.name).reduce((a, m) => a + m.value, 0);
    rows.replaceChildren(...(subs.length ? subs.flatMap((s) => subRows(s, dead(s))) :
      [el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'No subscriptions yet.' }))]));
  };

  const subRows = (s, deadLetters) => {
    const ps = s.partitions || [];
    const kind = kindName(s.config && s.config.kind);
    const backlog = sumBig(ps, (p) => p.backlog);
    const inFlight = sumBig(ps, (p) => p.inFlight);
    const id = `${s.topic}/${s.name}`;
    return [
      el('tr', { 'data-sub': id },
        el('td', {}, el('a', { href: '#/topics/' + encodeURIComponent(s.topic), text: s.topic })),
        el('td', { text: s.name }),
        el('td', {}, el('span', { class: 'kind', text: kind })),
        el('td', { class: 'num', text: s.members }),
        el('td', { class: 'num backlog', text: fmtInt(backlog) }),
        el('td', { class: 'num inflight', text: kind === 'queue' ? fmtInt(inFlight) : '–' }),
        el('td', { class: 'num', text: kind === 'queue' ? fmtInt(deadLetters) : '–', title: 'since the broker started (from /metrics)' }),
        el('td', {},
          kind === 'stream' ? el('button', { type: 'button', 'data-seek': id, text: 'Seek', onclick: () => openSeek(s) }) : null,
          kind === 'queue' ? el('button', { type: 'button', 'data-purge': id, text: 'Purge', onclick: () => purgeSub(s) }) : null, ' ',
          el('button', { type: 'button', class: 'danger', 'data-delete-sub': id, text: 'Delete', onclick: () => deleteSub(s) }))),
      el('tr', { class: 'detail' }, el('td', { colspan: 8 }, ps.map((p) => el('span', { class: 'mono' },
        `p${p.partition}: ${kind === 'stream' ? 'committed ' + fmtInt(p.committed) : 'acked below ' + fmtInt(p.ackFloor)}` +
        ` of ${fmtInt(p.endOffset)}, backlog ${fmtInt(p.backlog)}` +
        (kind === 'queue' ? `, in flight ${fmtInt(p.inFlight)}` : '') + (p.owner ? `, owner ${p.owner}` : '') + '   ')))),
    ];
  };

  const deleteSub = async (s) => {
    if (!await confirmAction(`Delete subscription "${s.name}" of topic "${s.topic}"? Its positions and acknowledgements are lost and its consumers are ended.`, 'Delete subscription')) return;
    try {
      await rpc('SubscriptionService', 'DeleteSubscription', { topic: s.topic, name: s.name });
      showNotice(status, `Deleted subscription ${s.name}.`);
      await refresh(true);
    } catch (e) { showError(status, e); }
  };

  // purgeSub drops a queue subscription's backlog after a confirmation
  // that says how large it is now.
  const purgeSub = async (s) => {
    let backlog = sumBig(s.partitions || [], (p) => p.backlog);
    try {
      const now = (await rpc('SubscriptionService', 'DescribeSubscription', { topic: s.topic, name: s.name })).subscription;
      backlog = sumBig(now.partitions || [], (p) => p.backlog);
    } catch (e) { showError(status, e); return; }
    if (!await confirmAction(`Purge subscription "${s.name}" of topic "${s.topic}"? Its ${fmtInt(backlog)} messages not acknowledged yet, ` +
      'in flight included, will never be delivered to it (the topic keeps them for other subscriptions). This cannot be undone.', 'Purge')) return;
    try {
      const r = await rpc('SubscriptionService', 'PurgeSubscription', { topic: s.topic, name: s.name });
      showNotice(status, `Purged ${fmtInt(r.purged)} messages of ${s.name}.`);
      await refresh(true);
    } catch (e) { showError(status, e); }
  };

  const openSeek = (s) => {
    const part = el('select', { id: 'seek-partition' }, el('option', { value: '', text: 'all' }),
      (s.partitions || []).map((p) => el('option', { value: p.partition, text: p.partition })));
    const target = el('select', { id: 'seek-target' }, ['earliest', 'latest', 'offset', 'time'].map((v) => el('option', { value: v, text: v })));
    const offset = el('input', { id: 'seek-offset', type: 'number', min: 0, value: 0, size: 8 });
    const time = el('input', { id: 'seek-time', type: 'datetime-local', step: 1 });
    const form = el('form', { class: 'inline', id: 'seek-form' },
      el('label', {}, 'Partition', part), el('label', {}, 'To', target), el('label', {}, 'Offset', offset), el('label', {}, 'Time', time),
      el('button', { class: 'primary', type: 'submit', text: 'Seek…' }),
      el('button', { type: 'button', text: 'Close', onclick: () => { seekCard.hidden = true; } }));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const req = { topic: s.topic, name: s.name };
      if (part.value !== '') req.partition = parseInt(part.value, 10);
      let where = target.value;
      if (target.value === 'earliest') req.earliest = true;
      else if (target.value === 'latest') req.latest = true;
      else if (target.value === 'offset') { req.offset = String(offset.value || 0); where = 'offset ' + req.offset; }
      else {
        if (!time.value) { showError(status, new Error('pick a time to seek to')); return; }
        req.time = new Date(time.value).toISOString(); where = req.time;
      }
      const which = part.value === '' ? 'every partition' : 'partition ' + part.value;
      if (!await confirmAction(`Move subscription "${s.name}" on ${which} to ${where}? Its members continue from there.`, 'Seek')) return;
      try {
        await rpc('SubscriptionService', 'SeekSubscription', req);
        showNotice(status, `Moved ${s.name} on ${which} to ${where}.`);
        await refresh(true);
      } catch (e) { showError(status, e); }
    });
    seekCard.replaceChildren(el('h2', { text: `Seek ${s.topic} / ${s.name}` }), form);
    seekCard.hidden = false;
  };

  createForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await rpc('SubscriptionService', 'CreateSubscription', {
        topic: subTopic.value, name: subName.value.trim(), config: { kind: subKind.value, startAt: subStart.value } });
      showNotice(status, `Created subscription ${subName.value.trim()} on ${subTopic.value}.`);
      subName.value = '';
      await refresh(true);
    } catch (e) { showError(status, e); }
  });

  main.append(el('h1', { text: 'Subscriptions' }),
    el('section', { class: 'card' }, el('h2', { text: 'Create a subscription' }), createForm), status, seekCard,
    el('section', { class: 'card scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, ['Topic', 'Subscription', 'Kind', 'Members', 'Backlog / lag', 'In flight', 'Dead letters', ''].map((h, i) =>
        el('th', { class: i >= 3 && i <= 6 ? 'num' : null, text: h })))),
      rows)));
  return every(3000, refresh, status);
}

// ---- start ----------------------------------------------------------------

window.addEventListener('hashchange', route);
setInterval(updateHealth, 5000);
updateHealth();
route();
