// farmlb.js — the farmlb client for web pages: an ES module with no
// dependencies and no build step. It does in a page what clientlib does in
// Go: fetch the farm list, choose a server with the same policies, stream
// with EventSource, fail over as in the patent's Figure 4 (retry the same
// server once, then fetch a fresh list, leave the failed server out and
// choose again), resume from the cursor so nothing is lost or repeated,
// follow the server's move hints, and back off with jitter.
//
//   import { subscribe } from "/farmlb.js";
//   const sub = subscribe({ topics: ["prices"], onEvent: (ev) => console.log(ev.topic, ev.data) });
//   // later: sub.close();
//
// Served by every pushd node at /farmlb.js. Apache-2.0.

export const STATUS = Object.freeze({ DOWN: "DOWN", UP: "UP", DRAINING: "DRAINING" });

const priorityRank = (p) => (typeof p === "string" && /^[A-Za-z]$/.test(p) ? p.toUpperCase().charCodeAt(0) - 65 : 99);

/** A server may be picked when it is UP and not full. */
export function eligible(s) {
  return s.status === STATUS.UP && !(s.capacity > 0 && s.users >= s.capacity);
}

/**
 * Candidates returns the indexes of the eligible servers of the highest
 * priority group that has one (steps 1 and 2 of every policy).
 */
export function candidates(list) {
  let best = 99;
  for (const s of list.servers) if (eligible(s)) best = Math.min(best, priorityRank(s.priority));
  const idx = [];
  list.servers.forEach((s, i) => {
    if (eligible(s) && priorityRank(s.priority) === best) idx.push(i);
  });
  return idx;
}

export class NoServerError extends Error {
  constructor(list) {
    super(`no UP server with room in the farm list (${list.servers.length} servers)`);
    this.name = "NoServerError";
  }
}

function randIndex(rand, n) {
  return Math.min(Math.floor(rand() * n), n - 1);
}

function pickWeighted(list, idx, w, rand) {
  let sum = 0;
  for (const i of idx) sum += w[i];
  if (!(sum > 0)) return list.servers[idx[randIndex(rand, idx.length)]];
  let x = rand() * sum;
  for (const i of idx) {
    x -= w[i];
    if (x < 0) return list.servers[i];
  }
  return list.servers[idx[idx.length - 1]];
}

function median(sorted) {
  const n = sorted.length;
  return n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

function effectiveLoads(list, idx) {
  const out = idx.map((i) => list.servers[i].users);
  const allCap = idx.every((i) => list.servers[i].capacity > 0);
  if (allCap) {
    const meanCap = idx.reduce((a, i) => a + list.servers[i].capacity, 0) / idx.length;
    idx.forEach((i, k) => (out[k] *= meanCap / list.servers[i].capacity));
  }
  return out;
}

// Each policy: probabilities(list) → array parallel to list.servers (or
// null when it has no closed form), pick(list, rand) → server. rand() gives
// uniform numbers in [0, 1); the same numbers give the same choice as the Go
// policies (testdata/policy-vectors.json proves it).
const closedForm = (probs) => ({
  probabilities: probs,
  pick(list, rand) {
    const idx = candidates(list);
    if (idx.length === 0) throw new NoServerError(list);
    return pickWeighted(list, idx, probs(list), rand);
  },
});

function zeros(list) {
  return list.servers.map(() => 0);
}

export const policies = {
  "inverse-share": closedForm((list) => {
    const idx = candidates(list);
    const p = zeros(list);
    const n = idx.length;
    const total = idx.reduce((a, i) => a + list.servers[i].users, 0);
    for (const i of idx) {
      if (n === 1) p[i] = 1;
      else if (total === 0) p[i] = 1 / n;
      else p[i] = (1 - list.servers[i].users / total) / (n - 1);
    }
    return p;
  }),
  random: closedForm((list) => {
    const idx = candidates(list);
    const p = zeros(list);
    for (const i of idx) p[i] = 1 / idx.length;
    return p;
  }),
  "least-loaded": closedForm((list) => {
    const idx = candidates(list);
    const p = zeros(list);
    if (idx.length === 0) return p;
    const least = Math.min(...idx.map((i) => list.servers[i].users));
    const tied = idx.filter((i) => list.servers[i].users === least);
    for (const i of tied) p[i] = 1 / tied.length;
    return p;
  }),
  // gap-fill mirrors farm.GapFill in Go operation for operation (see its
  // doc comment for the formula and BENCHMARKS.md for the constants).
  "gap-fill": closedForm((list) => {
    const idx = candidates(list);
    const p = zeros(list);
    const n = idx.length;
    if (n === 0) return p;
    const loads = effectiveLoads(list, idx);
    const sorted = [...loads].sort((a, b) => a - b);
    const band = gapFillBand(n);
    const refNoise = Math.sqrt(1 + Math.PI / (2 * Math.max(n - 1, 1)));
    const w = [];
    let sum = 0;
    loads.forEach((u, k) => {
      let wk = 1;
      if (n > 1) {
        // The others, in order: sorted without one element equal to u.
        let pos = 0;
        while (pos < n && sorted[pos] < u) pos++;
        const other = (j) => (j >= pos ? sorted[j + 1] : sorted[j]);
        const m = n - 1;
        let ref = other(Math.floor(m / 2));
        if (m % 2 === 0) ref = (other(m / 2 - 1) + other(m / 2)) / 2;
        if (ref - u > band * Math.max(Math.sqrt(ref), 1) * refNoise) {
          const dev = [];
          for (let j = 0; j < m; j++) dev.push(Math.abs(other(j) - ref));
          dev.sort((a, b) => a - b);
          const sigma = Math.max(1.4826 * median(dev), Math.sqrt(ref), 1) * refNoise;
          const g = ref - u - band * sigma;
          if (g > 0) {
            wk += Math.min(GAP_FILL_KNEE * Math.pow(g / sigma, GAP_FILL_POWER), g / (GAP_FILL_BATCH * Math.max(ref, 1)));
          }
        }
      }
      w.push(wk);
      sum += wk;
    });
    idx.forEach((i, k) => (p[i] = w[k] / sum));
    return p;
  }),
  p2c: {
    probabilities: null,
    pick(list, rand) {
      const idx = candidates(list);
      if (idx.length === 0) throw new NoServerError(list);
      if (idx.length === 1) return list.servers[idx[0]];
      const a = randIndex(rand, idx.length);
      let b = randIndex(rand, idx.length - 1);
      if (b >= a) b++;
      const sa = list.servers[idx[a]];
      const sb = list.servers[idx[b]];
      if (sa.users < sb.users) return sa;
      if (sb.users < sa.users) return sb;
      return rand() < 0.5 ? sa : sb;
    },
  },
};

/** A round-robin policy keeps a counter, so each client makes its own. */
export function roundRobin() {
  let next = 0;
  return {
    probabilities: policies.random.probabilities,
    pick(list) {
      const idx = candidates(list);
      if (idx.length === 0) throw new NoServerError(list);
      return list.servers[idx[next++ % idx.length]];
    },
  };
}

/** The gap-fill constants must equal farm.GapFillBandMin, GapFillKnee, GapFillPower and GapFillBatch in Go. */
export const GAP_FILL_BAND_MIN = 1.2;
export const GAP_FILL_KNEE = 2;
export const GAP_FILL_POWER = 4;
export const GAP_FILL_BATCH = 0.01;

/** gapFillBand mirrors gapFillBand in Go: max(band min, Φ⁻¹(1 − 1/2n)) by Abramowitz and Stegun 26.2.23. */
function gapFillBand(n) {
  const t = Math.sqrt(-2 * Math.log(1 / (2 * n)));
  const q = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t);
  return Math.max(GAP_FILL_BAND_MIN, q);
}
export const DEFAULT_POLICY = "gap-fill";

/** policy returns the named policy (a fresh one for round-robin). */
export function policy(name = DEFAULT_POLICY) {
  if (name === "round-robin") return roundRobin();
  const p = policies[name];
  if (!p) throw new Error(`unknown policy ${JSON.stringify(name)}`);
  return p;
}

/** parseList checks a JSON farm list as GET /farm returns it. */
export function parseList(json) {
  if (!json || !Array.isArray(json.servers)) throw new Error("farm list: no servers array");
  for (const [i, s] of json.servers.entries()) {
    if (typeof s.name !== "string" || typeof s.url !== "string") throw new Error(`farm list: server ${i}: name and url are required`);
    if (!Object.values(STATUS).includes(s.status)) throw new Error(`farm list: server ${i}: status ${JSON.stringify(s.status)}`);
    if (!Number.isInteger(s.users) || s.users < 0) throw new Error(`farm list: server ${i}: users ${JSON.stringify(s.users)}`);
    if (priorityRank(s.priority) > 25) throw new Error(`farm list: server ${i}: priority ${JSON.stringify(s.priority)}`);
  }
  return json;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

/**
 * subscribe streams topics from the farm and keeps streaming through the
 * loss of nodes. Options:
 *   topics        topic names (required)
 *   onEvent(ev)   {topic, id, data, node, reset}
 *   onStatus(st)  {state: "connecting"|"streaming"|"failover"|"waiting", node, reason}
 *   listURLs      farm list URLs (default: this page's origin + "/farm")
 *   policy        policy name (default "gap-fill")
 *   cursor        resume after this event id
 *   retryDelayMs  pause before the one retry of the same server (±50% jitter; default 250)
 *   maxBackoffMs  cap of the pause between rounds that reach nothing (default 10000)
 *   relistAtOnce  skip the retry and fetch a fresh list at once
 *   rand          a function returning uniform numbers in [0,1) (default Math.random)
 *   EventSource   the EventSource class (default globalThis.EventSource)
 *   fetch         the fetch function (default globalThis.fetch)
 * Returns {close(), node(), cursor(), failovers()}.
 */
export function subscribe(opts) {
  const topics = opts.topics ?? [];
  if (topics.length === 0) throw new Error("farmlb: name at least one topic");
  const ES = opts.EventSource ?? globalThis.EventSource;
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const rand = opts.rand ?? Math.random;
  const pol = policy(opts.policy);
  const retryDelay = opts.retryDelayMs ?? 250;
  const maxBackoff = opts.maxBackoffMs ?? 10000;
  const listURLs = opts.listURLs ?? [new URL("/farm", globalThis.location?.href ?? "http://localhost/").href];
  const onEvent = opts.onEvent ?? (() => {});
  const onStatus = opts.onStatus ?? (() => {});
  const abort = new AbortController();
  const state = { node: "", cursor: opts.cursor ?? "", failovers: [], es: null };
  const excluded = new Map(); // name -> {since, seenOut}

  async function fetchList() {
    const errors = [];
    for (const u of listURLs) {
      try {
        const r = await doFetch(u, { headers: { Accept: "application/json" }, signal: abort.signal, cache: "no-store" });
        if (!r.ok) throw new Error(`${u}: ${r.status}`);
        return parseList(await r.json());
      } catch (e) {
        errors.push(e.message);
      }
    }
    throw new Error("farmlb: cannot fetch the farm list: " + errors.join("; "));
  }

  function noteList(list) {
    for (const [name, ex] of excluded) {
      const s = list.servers.find((x) => x.name === name);
      if (!s || s.status !== STATUS.UP) ex.seenOut = true;
      else if (ex.seenOut || Date.now() - ex.since > 30000) excluded.delete(name);
    }
  }

  function choose(list, hint) {
    const view = { ...list, servers: list.servers.filter((s) => !excluded.has(s.name)) };
    if (hint) {
      for (const i of candidates(view)) {
        try {
          if (new URL(view.servers[i].url).host === new URL(hint).host) return view.servers[i];
        } catch {}
      }
    }
    return pol.pick(view, rand);
  }

  // stream resolves with {kind: "failed"|"moved"|"closed", reason, hint, delayMs, healthy}.
  function stream(srv, pending) {
    return new Promise((resolve) => {
      const u = new URL("/stream", srv.url);
      for (const t of topics) u.searchParams.append("topic", t);
      // Events named by their topic (addEventListener below), payload as data.
      u.searchParams.set("event", "topic");
      if (state.cursor) u.searchParams.set("cursor", state.cursor);
      onStatus({ state: "connecting", node: srv.name });
      const es = new ES(u.href);
      state.es = es;
      let healthy = false;
      let done = false;
      const finish = (r) => {
        if (done) return;
        done = true;
        es.close();
        state.es = null;
        resolve({ ...r, healthy });
      };
      abort.signal.addEventListener("abort", () => finish({ kind: "closed" }), { once: true });
      es.onopen = () => {
        state.node = srv.name;
        if (pending.value) {
          state.failovers.push({ ...pending.value, to: srv.name, tookMs: Date.now() - pending.value.at });
          pending.value = null;
        }
        onStatus({ state: "streaming", node: srv.name });
      };
      // EventSource reconnects by itself; farmlb does its own failover.
      es.onerror = () => finish({ kind: "failed", reason: "stream failed or refused" });
      const deliver = (topic, e, reset) => {
        onEvent({ topic, id: e.lastEventId, data: e.data, node: srv.name, reset });
        if (e.lastEventId) state.cursor = e.lastEventId;
      };
      for (const t of topics) {
        es.addEventListener(t, (e) => {
          healthy = true;
          deliver(t, e, false);
        });
      }
      es.addEventListener("farmlb-reset", (e) => {
        let topic = "";
        try {
          topic = JSON.parse(e.data).topic;
        } catch {}
        deliver(topic, e, true);
      });
      es.addEventListener("farmlb-move", (e) => {
        let h = {};
        try {
          h = JSON.parse(e.data);
        } catch {}
        finish({ kind: "moved", reason: "told to move: " + (h.reason ?? ""), hint: h.url, delayMs: h.delay_ms ?? 0 });
      });
    });
  }

  async function run() {
    let list = null;
    let hint = "";
    let retry = null;
    let fails = 0;
    const pending = { value: null };
    const backoff = () => sleep(rand() * Math.min(maxBackoff, retryDelay * 2 ** Math.min(fails, 16)) + 1, abort.signal);
    while (!abort.signal.aborted) {
      let srv;
      const isRetry = retry !== null;
      if (isRetry) {
        srv = retry;
        retry = null;
      } else {
        try {
          if (!list) {
            list = await fetchList();
            noteList(list);
          }
          srv = choose(list, hint);
        } catch (e) {
          if (abort.signal.aborted) return;
          onStatus({ state: "waiting", reason: e.message });
          list = null;
          fails++;
          await backoff();
          continue;
        } finally {
          hint = "";
        }
      }
      const end = await stream(srv, pending);
      if (end.kind === "closed") return;
      fails = end.healthy ? 0 : fails + 1;
      if (!pending.value) pending.value = { at: Date.now(), from: srv.name, reason: end.reason };
      state.node = "";
      onStatus({ state: "failover", node: srv.name, reason: end.reason });
      if (end.kind === "failed" && !opts.relistAtOnce && !isRetry) {
        await sleep(retryDelay / 2 + rand() * retryDelay, abort.signal);
        retry = srv;
        continue;
      }
      excluded.set(srv.name, { since: Date.now(), seenOut: false });
      list = null;
      if (end.kind === "moved") {
        hint = end.hint ?? "";
        if (end.delayMs > 0) await sleep(Math.min(end.delayMs, maxBackoff), abort.signal);
      } else if (fails > excluded.size + 1) {
        await backoff();
      }
    }
  }
  run();
  return {
    close() {
      abort.abort();
    },
    node: () => state.node,
    cursor: () => state.cursor,
    failovers: () => [...state.failovers],
  };
}
