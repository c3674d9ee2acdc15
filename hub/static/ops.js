// Orderhub ops page: polls /ops/api/summary every 2 s and redraws in place (no reload, no libraries).
// Everything from the server is inserted as text (textContent), never as HTML: payloads are untrusted.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  const ENDPOINT_ROWS = 12;
  const SUMMARY_URL = "/ops/api/summary";
  const HEADERS = { Accept: "application/json", "X-Ops-Request": "1" };
  const state = { timer: null, failures: { inbound: "", deliveries: "" }, lastOk: 0, allEndpoints: false };

  // ---- small helpers -----------------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const svgNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(svgNS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }

  const int = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }
  const ms = (v) => (v === null || v === undefined ? "–" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`);
  const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(v >= 0.999 || v === 0 ? 0 : 1)} %`);
  const rate = (v) => (v === null || v === undefined ? "–" : v >= 10 ? v.toFixed(0) : v.toFixed(v >= 1 ? 1 : 2));
  function ago(iso) {
    if (!iso) return "";
    return `${duration(Math.max(0, (Date.now() - Date.parse(iso)) / 1000))} ago`;
  }
  const level = (value, warn, bad) => (value === null || value === undefined ? "" : value >= bad ? "bad" : value >= warn ? "warn" : "");

  // ---- KPI tiles ---------------------------------------------------------------------------------
  function kpi(name, value, sub, tone) {
    const tile = document.querySelector(`[data-kpi="${name}"]`);
    tile.querySelector(".value").textContent = value;
    tile.querySelector(".sub").textContent = sub || "";
    tile.dataset.tone = tone || "";
  }

  function renderKpis(d) {
    const q = d.queue;
    kpi("queue-depth", int(q.depth), `${int(q.ready)} ready · ${int(q.in_progress)} running · ${int(q.deferred)} deferred`, level(q.ready, 1000, 10000));
    kpi("oldest-job", q.oldest_age_seconds === null ? "none" : duration(q.oldest_age_seconds), "waiting to start",
      level(q.oldest_age_seconds, 10, 60));
    kpi("jobs-per-second", rate(d.jobs_per_second), d.jobs_per_second === null ? "measuring…" : "ingest + delivery");
    kpi("in-flight", int(q.in_progress), "arq jobs running now");
    kpi("failed", int(d.failed_jobs), `${int(d.inbound.failed)} inbound · ${int(d.deliveries.failed)} deliveries`,
      d.failed_jobs > 0 ? "warn" : "");
    const holding = d.retrying.length;
    kpi("retrying", int(d.deliveries.retrying), holding ? `deliveries · ${holding} endpoint${holding === 1 ? "" : "s"}` : "deliveries",
      d.deliveries.retrying > 0 ? "warn" : "");
    kpi("inbound-backlog", int(d.inbound.pending),
      d.inbound.oldest_unprocessed_age_seconds === null ? "nothing waiting" : `oldest ${duration(d.inbound.oldest_unprocessed_age_seconds)}`,
      level(d.inbound.oldest_unprocessed_age_seconds, 10, 60));
    kpi("deliveries-pending", int(d.deliveries.pending),
      `${int(d.deliveries.due)} due` + (d.deliveries.oldest_due_age_seconds === null ? "" : ` · late ${duration(d.deliveries.oldest_due_age_seconds)}`),
      level(d.deliveries.oldest_due_age_seconds, 30, 120));
    kpi("endpoints-disabled", int(d.endpoints_disabled), "disabled · see Endpoints", d.endpoints_disabled > 0 ? "warn" : "");
  }

  // ---- charts (hand-drawn SVG bars) --------------------------------------------------------------
  function renderChart(name, minutes, values) {
    const figure = document.querySelector(`[data-chart="${name}"]`);
    const width = 600, height = 80, gap = 2;
    const max = Math.max(1, ...values);
    const total = values.reduce((a, b) => a + b, 0);
    const bar = width / values.length;
    const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img",
      "aria-label": `${name}: ${total} in the last hour` });
    plot.append(svg("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
    values.forEach((value, i) => {
      const h = value ? Math.max(1.5, (value / max) * (height - 2)) : 0;
      const rect = svg("rect", { x: i * bar + gap / 2, y: height - h, width: Math.max(1, bar - gap), height: h });
      const title = svg("title");
      title.textContent = `${new Date(minutes[i]).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}: ${value}`;
      rect.append(title);
      plot.append(rect);
    });
    const axis = el("div", { class: "axis-labels" }, el("span", {}, "−60 min"), el("span", {}, `peak ${int(max)}/min`),
      el("span", {}, "now"));
    figure.querySelector(".plot").replaceChildren(plot, axis);
    figure.querySelector("figcaption b").textContent = int(total);
  }

  // ---- tables ------------------------------------------------------------------------------------
  function cell(text, cls, title) {
    return el("td", { class: cls, title }, text);
  }

  function renderSources(rows) {
    const body = document.querySelector("#sources tbody");
    if (!rows.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No sources yet")));
      return;
    }
    body.replaceChildren(...rows.map((s) => {
      const total = Object.values(s.totals).reduce((a, b) => a + b, 0);
      const badSig = s.rejects_5m.bad_signature || 0;
      const badPayload = s.rejects_5m.bad_payload || 0;
      return el("tr", { "data-source": s.source },
        cell(s.source, "name"),
        cell(int(s.received_5m), "num"),
        cell(rate(s.rate_per_second), "num"),
        cell(int(s.failed_5m), `num ${s.failed_5m ? "warn" : ""}`),
        cell(int(badSig), `num ${badSig ? "bad" : ""}`, `all time: ${int(s.rejects_total.bad_signature || 0)}`),
        cell(int(badPayload), `num ${badPayload ? "warn" : ""}`, `all time: ${int(s.rejects_total.bad_payload || 0)}`),
        cell(int(total), "num", Object.entries(s.totals).map(([k, v]) => `${k}: ${v}`).join(", ")));
    }));
  }

  function renderEndpoints(all) {
    const body = document.querySelector("#endpoints tbody");
    if (!all.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "empty" }, "No endpoint activity in the last hour")));
      return;
    }
    // Worst first (the server sorts); the healthy tail stays folded unless asked for.
    const rows = state.allEndpoints ? all : all.slice(0, ENDPOINT_ROWS);
    const more = all.length - rows.length;
    const toggle = all.length > ENDPOINT_ROWS
      ? el("tr", { class: "more" }, el("td", { colspan: 9 }, el("button", { type: "button", class: "link",
        onclick: () => { state.allEndpoints = !state.allEndpoints; renderEndpoints(all); } },
        more ? `Show ${more} more` : "Show fewer")))
      : null;
    body.replaceChildren(...rows.map((e) => {
      const tone = e.success_rate === null ? "" : e.success_rate < 0.9 ? "bad" : e.success_rate < 0.99 ? "warn" : "ok";
      let stateText = "enabled";
      let stateTone = "ok";
      if (!e.enabled) { stateText = `disabled: ${e.disabled_reason || "no reason recorded"}`; stateTone = "bad"; }
      else if (e.failing_since) { stateText = `failing since ${ago(e.failing_since)}`; stateTone = "warn"; }
      return el("tr", { "data-endpoint": e.id, class: e.enabled ? "" : "disabled" },
        el("td", { class: "name", title: `${e.id} · ${e.organization_id}` }, el("span", { class: "url" }, e.url),
          e.description ? el("small", {}, e.description) : null),
        cell(pct(e.success_rate), `num ${tone}`),
        cell(ms(e.p50_ms), "num"),
        cell(ms(e.p95_ms), "num"),
        cell(int(e.attempts_1h), "num"),
        cell(int(e.failed_1h), `num ${e.failed_1h ? "warn" : ""}`),
        cell(int(e.retrying), `num ${e.retrying ? "warn" : ""}`),
        cell(int(e.failed), `num ${e.failed ? "bad" : ""}`),
        cell(stateText, `state ${stateTone}`, e.disabled_at ? `disabled ${ago(e.disabled_at)}` : undefined));
    }), ...(toggle ? [toggle] : []));
  }

  // ---- failures with retry buttons ---------------------------------------------------------------
  function toast(message, tone) {
    const node = document.getElementById("toast");
    node.textContent = message;
    node.dataset.tone = tone || "";
    node.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { node.hidden = true; }, 4000);
  }

  async function retry(kind, id, button) {
    button.disabled = true;
    button.textContent = "Retrying…";
    const path = kind === "delivery" ? "deliveries" : "inbound-events";
    try {
      const resp = await fetch(`/ops/api/${path}/${encodeURIComponent(id)}/retry`, {
        method: "POST", credentials: "same-origin", headers: HEADERS,
      });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) throw new Error(body.error || `HTTP ${resp.status}`);
      button.textContent = "Queued ✓";
      button.closest("li, tr").classList.add("retried");
      toast(body.message || "Queued for retry", "ok");
      schedule(300);
    } catch (err) {
      button.disabled = false;
      button.textContent = button.dataset.label || "Retry";
      toast(`Retry failed: ${err.message}`, "bad");
    }
  }

  function failureItem(kind, item) {
    const isDelivery = kind === "delivery";
    const when = isDelivery ? item.updated : item.processed_at || item.received_at;
    const where = isDelivery ? `${item.event_type} → ${item.endpoint_url}` : `${item.source}${item.topic ? ` · ${item.topic}` : ""}`;
    const error = isDelivery ? errorText(item.last_status_code, item.last_error) : item.error;
    const payload = isDelivery ? item.payload : item.body;
    const truncated = isDelivery ? item.payload_truncated : item.body_truncated;
    const tries = (n) => `${n} attempt${n === 1 ? "" : "s"}`;
    const meta = isDelivery ? tries(item.attempt_count) : `${tries(item.attempts)} · ${int(item.size)} bytes`;
    return el("li", { "data-id": item.id, "data-kind": kind },
      el("div", { class: "row" },
        el("div", { class: "what" },
          el("div", { class: "where" }, where),
          el("div", { class: "error" }, error || "no error recorded"),
          el("div", { class: "meta" }, el("code", {}, item.id), ` · ${meta} · `, el("time", { datetime: when, title: when }, ago(when)))),
        el("button", { type: "button", class: "retry", "data-retry": item.id,
          onclick: (ev) => retry(kind, item.id, ev.currentTarget) }, "Retry")),
      el("details", { "data-details": item.id },
        el("summary", {}, isDelivery ? "Event payload" : "Request body", truncated ? " (truncated)" : ""),
        el("pre", {}, payload || "(empty)")));
  }

  function errorText(status, error) {
    if (status && !(error || "").includes(String(status))) return [`HTTP ${status}`, error].filter(Boolean).join(" · ");
    return error || "no error recorded";
  }

  function until(iso) {
    if (!iso) return "sending now";
    const seconds = (Date.parse(iso) - Date.now()) / 1000;
    return seconds <= 0 ? "due now" : `in ${duration(seconds)}`;
  }

  function renderRetrying(rows) {
    // Endpoints whose deliveries fail but still have attempts left: the ones on-call can still save.
    const panel = document.getElementById("retrying-panel");
    panel.dataset.count = String(rows.length);
    const body = document.querySelector("#retrying tbody");
    if (!rows.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No delivery is failing. ✓")));
      return;
    }
    body.replaceChildren(...rows.map((r) => el("tr", { "data-endpoint": r.endpoint_id },
      el("td", { class: "name", title: `${r.endpoint_id} · ${r.organization_id}` }, el("span", { class: "url" }, r.url),
        r.enabled ? null : el("small", { class: "bad" }, "endpoint disabled: re-enable it to retry")),
      cell(int(r.retrying), "num warn"),
      el("td", { class: "when" }, el("time", { datetime: r.next_attempt_at || "", title: r.next_attempt_at || "" },
        until(r.next_attempt_at))),
      cell(errorText(r.last_status_code, r.last_error), "error bad", `last failure ${ago(r.last_failed_at)}`),
      el("td", {}, el("button", { type: "button", class: "retry", "data-retry": r.next_delivery_id, "data-label": "Retry now",
        title: `Send ${r.next_delivery_id} now`, disabled: !r.enabled,
        onclick: (ev) => retry("delivery", r.next_delivery_id, ev.currentTarget) }, "Retry now")))));
  }

  function renderFailures(kind, listId, items, retrying) {
    // Rebuild only when the set changed, and keep expanded payloads expanded across refreshes.
    const signature = JSON.stringify([retrying || 0, items.map((i) => [i.id, i.updated || i.processed_at, i.error || i.last_error])]);
    if (state.failures[kind] === signature) return;
    state.failures[kind] = signature;
    const list = document.getElementById(listId);
    const open = new Set([...list.querySelectorAll("details[open]")].map((d) => d.dataset.details));
    if (!items.length) {
      // A delivery still retrying has failed too: never call that "nothing failed".
      list.replaceChildren(retrying
        ? el("li", { class: "empty warn" }, `None has spent every attempt yet; ${int(retrying)} still retrying (above).`)
        : el("li", { class: "empty" }, "Nothing failed. ✓"));
      return;
    }
    list.replaceChildren(...items.map((item) => {
      const node = failureItem(kind, item);
      if (open.has(item.id)) node.querySelector("details").open = true;
      return node;
    }));
  }

  // ---- refresh loop ------------------------------------------------------------------------------
  function setStatus(stateName, text) {
    const status = document.getElementById("status");
    status.dataset.state = stateName;
    document.getElementById("status-text").textContent = text;
  }

  function renderConnections(rows) {
    // Pulled platform connections: a revoked token shows here (needs_attention) with the platform's reason.
    document.getElementById("connections-panel").dataset.count = String(rows.length);
    const body = document.querySelector("#connections tbody");
    if (!rows.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No connection with platform credentials")));
      return;
    }
    const tone = { idle: "", running: "", failed: "warn", needs_attention: "bad" };
    body.replaceChildren(...rows.map((c) => el("tr", { "data-connection": c.id, "data-state": c.state },
      el("td", { class: "name", title: `${c.id} · ${c.organization_id}` }, `${c.source} · ${c.name}`),
      cell(c.state.replace("_", " "), tone[c.state] || ""),
      cell(c.last_synced_at ? ago(c.last_synced_at) : "never", "when", c.last_synced_at || ""),
      cell(int(c.orders_seen), "num"),
      cell(int(c.orders_missed_by_webhooks), `num ${c.orders_missed_by_webhooks ? "warn" : ""}`),
      cell(c.last_error || "", "error bad"))));
  }

  function render(d) {
    renderKpis(d);
    const c = d.charts;
    renderChart("inbound_received", c.minutes, c.inbound_received);
    renderChart("deliveries_succeeded", c.minutes, c.deliveries_succeeded);
    renderChart("attempts_failed", c.minutes, c.attempts_failed);
    renderSources(d.sources);
    renderEndpoints(d.endpoints);
    renderFailures("inbound", "failed-inbound", d.failed_inbound);
    renderRetrying(d.retrying);
    renderConnections(d.connections || []);
    renderFailures("delivery", "failed-deliveries", d.failed_deliveries, d.deliveries.retrying);
    const at = new Date(d.generated_at).toLocaleTimeString();
    setStatus("live", `live · updated ${at} · rates ${Math.round(d.stats_age_seconds)} s old`);
  }

  async function refresh() {
    try {
      const resp = await fetch(SUMMARY_URL, { credentials: "same-origin", headers: HEADERS, cache: "no-store" });
      if (resp.status === 401) {
        window.location.assign("/ops/login");
        return;
      }
      const body = await resp.json();
      if (!resp.ok || !body.success) throw new Error(body.error || `HTTP ${resp.status}`);
      render(body.data);
      state.lastOk = Date.now();
      document.body.dataset.loaded = "true";
    } catch (err) {
      const age = state.lastOk ? ` · last good ${duration((Date.now() - state.lastOk) / 1000)} ago` : "";
      setStatus("error", `cannot refresh: ${err.message}${age}`);
    } finally {
      schedule(REFRESH_MS);
    }
  }

  function schedule(delay) {
    clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      if (document.hidden) schedule(REFRESH_MS);  // no polling in a background tab
      else refresh();
    }, delay);
  }

  document.addEventListener("visibilitychange", () => { if (!document.hidden) schedule(0); });
  refresh();
})();
