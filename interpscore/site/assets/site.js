/* InterpScore leaderboard: table, plots, a view per SAE and an editable formula.
 *
 * Vanilla JS, no build step, no network. Every text from the data goes into the page as
 * text (textContent, setAttribute), never as HTML. Scores are recomputed exactly as
 * interpscore/formula.py score() does: a weighted sum over the formula's components, a
 * missing (absent, null or non-finite) component adds nothing and marks the score partial,
 * the weights are never renormalised, and the sum is exactly rounded like math.fsum.
 */
(function () {
  "use strict";

  const DATA = JSON.parse(document.getElementById("site-data").textContent);
  const KNOWN = Object.keys(DATA.known_components);
  const REPORT_WEIGHTS = DATA.formula.weights;
  const SVG_NS = "http://www.w3.org/2000/svg";

  // ---------------------------------------------------------------- helpers

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.setAttribute("class", value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    if (children === null || children === undefined) return;
    for (const child of Array.isArray(children) ? children : [children]) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function isNum(x) {
    return typeof x === "number" && Number.isFinite(x);
  }

  /** A number as the Markdown report writes it: 3 decimals, 3 significant digits when tiny or huge. */
  function fmt(x, digits) {
    if (x === null || x === undefined) return "—";
    if (typeof x === "boolean") return x ? "yes" : "no";
    if (typeof x !== "number") return String(x);
    if (!Number.isFinite(x)) return "—";
    if (Number.isInteger(x) && digits === 0) return String(x);
    if (x !== 0 && (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3)) return x.toPrecision(3);
    return x.toFixed(digits === undefined ? 3 : digits);
  }

  function ciText(ci) {
    return ci ? "[" + fmt(ci[0]) + ", " + fmt(ci[1]) + "]" : "";
  }

  /** Exactly rounded sum of finite numbers (Shewchuk's algorithm, as Python's math.fsum). */
  function fsum(values) {
    const partials = [];
    for (let x of values) {
      let i = 0;
      for (let j = 0; j < partials.length; j++) {
        let y = partials[j];
        if (Math.abs(x) < Math.abs(y)) { const t = x; x = y; y = t; }
        const hi = x + y;
        const lo = y - (hi - x);
        if (lo !== 0) partials[i++] = lo;
        x = hi;
      }
      partials.length = i;
      partials.push(x);
    }
    let n = partials.length;
    let hi = 0;
    if (n > 0) {
      hi = partials[--n];
      let lo = 0;
      while (n > 0) {
        const x = hi;
        const y = partials[--n];
        hi = x + y;
        const yr = hi - x;
        lo = y - yr;
        if (lo !== 0) break;
      }
      if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
        const y = lo * 2;
        const x = hi + y;
        const yr = x - hi;
        if (y === yr) hi = x;
      }
    }
    return hi;
  }

  /** interpscore.formula.score(): weighted sum, missing components add 0, no renormalising. */
  function scoreOf(components, weights) {
    const contributions = {};
    const missing = [];
    for (const [name, weight] of Object.entries(weights)) {
      const value = components ? components[name] : undefined;
      if (!isNum(value)) { missing.push(name); continue; }
      contributions[name] = weight * value;
    }
    return { value: fsum(Object.values(contributions)), contributions, missing, partial: missing.length > 0 };
  }

  // ---------------------------------------------------------------- formula state

  const state = {
    text: {},                // the inputs' text per known component
    version: DATA.builtin_versions.includes(DATA.formula.version) ? DATA.formula.version + "-custom" : DATA.formula.version,
    description: "",
    applied: null,           // the last valid formula: {weights, version}
    sort: { key: "rank", dir: 1 },
    filters: { model: "", hook: "", architecture: "", q: "" },
    showControls: true,
    metric: DATA.metric_names.includes("explained_variance") ? "explained_variance" : DATA.metric_names[0],
  };

  function resetWeights() {
    loadWeights(REPORT_WEIGHTS);
  }

  function loadWeights(weights) {
    for (const name of componentOrder()) {
      state.text[name] = name in weights ? String(weights[name]) : "0";
    }
  }

  /** Report formula's components first (its order), then the other known ones. */
  function componentOrder() {
    const order = Object.keys(REPORT_WEIGHTS).filter((n) => KNOWN.includes(n));
    for (const n of KNOWN) if (!order.includes(n)) order.push(n);
    return order;
  }

  /** The formula the inputs describe, with the reasons it is not valid (load_formula_file's rules). */
  function readFormula() {
    const weights = {};
    const problems = [];
    for (const name of componentOrder()) {
      const text = (state.text[name] || "").trim();
      const w = text === "" ? 0 : Number(text);
      if (!Number.isFinite(w)) { problems.push("weight of " + name + " is not a number"); continue; }
      if (w < 0) problems.push("weight of " + name + " is negative");
      else if (w > 1) problems.push("weight of " + name + " is more than 1");
      if (w !== 0) weights[name] = w;
    }
    const sum = fsum(Object.values(weights));
    if (Object.keys(weights).length === 0) problems.push("no component has a weight");
    if (!(Math.abs(sum - 1) <= DATA.weight_sum_tolerance)) {
      problems.push("weights sum to " + sum.toPrecision(7) + ", not 1 (±" + DATA.weight_sum_tolerance + ")");
    }
    const scorable = problems.length === 0;
    const version = state.version.trim();
    if (!version) problems.push("the version is empty");
    else if (DATA.builtin_versions.includes(version)) problems.push("version " + version + " is built in; give a new name");
    return { weights, sum, version, problems, scorable, valid: problems.length === 0 };
  }

  function sameAsReport(weights) {
    const a = Object.keys(weights);
    const b = Object.keys(REPORT_WEIGHTS);
    return a.length === b.length && a.every((n) => REPORT_WEIGHTS[n] === weights[n]);
  }

  function tomlString(text) {
    let out = "";
    for (const ch of text) {
      const code = ch.codePointAt(0);
      if (ch === "\\") out += "\\\\";
      else if (ch === '"') out += '\\"';
      else if (code < 0x20 || code === 0x7f) out += "\\u" + code.toString(16).padStart(4, "0");
      else out += ch;
    }
    return '"' + out + '"';
  }

  /** The formula file: TOML that load_formula_file reads (numbers in shortest round-trip form). */
  function formulaToml(formula) {
    const lines = [
      "# InterpScore formula written by the leaderboard page.",
      "# Use: interpscore score REPORT.json --formula THIS_FILE",
      "version = " + tomlString(formula.version),
    ];
    if (state.description.trim()) lines.push("description = " + tomlString(state.description.trim()));
    if (isNum(DATA.formula.l0_target)) lines.push("l0_target = " + String(DATA.formula.l0_target));
    lines.push("", "[weights]");
    for (const [name, w] of Object.entries(formula.weights)) lines.push(name + " = " + String(w));
    return lines.join("\n") + "\n";
  }

  function download(formula) {
    const blob = new Blob([formulaToml(formula)], { type: "application/toml" });
    const url = URL.createObjectURL(blob);
    const name = "interpscore-formula-" + formula.version.replace(/[^A-Za-z0-9._-]+/g, "_") + ".toml";
    const link = el("a", { href: url, download: name, hidden: true });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // ---------------------------------------------------------------- scoring rows

  function isControl(sae) {
    return sae.is_control;
  }

  /** A block the run could not score (a failed SAE: no InterpScore in the report) stays
   * without one under any formula. */
  const NO_SCORE = { value: null, contributions: {}, missing: [], partial: false, none: true };

  function scoreBlock(block, weights) {
    return isNum(block.interp_score) ? scoreOf(block.components, weights) : NO_SCORE;
  }

  /** Every SAE scored with the applied formula and ranked: the one ranking of the site
   * (model controls and SAEs without a score are listed, not ranked). */
  function scoredRows() {
    const weights = state.applied.weights;
    const original = sameAsReport(weights);
    const rows = DATA.saes.map((sae, index) => {
      const s = scoreBlock(sae, weights);
      const controls = Object.entries(sae.controls).map(([name, block]) => ({
        name, kind: block.kind, score: scoreBlock(block, weights),
        ci: original ? block.interp_score_ci95 : null,
        differenceCi: original ? block.difference_ci95 : null,
        side: original ? block.side : null,
      }));
      return { sae, index, score: s, ci: original ? sae.interp_score_ci95 : null, controls, rank: null };
    });
    const order = rows.filter((r) => !isControl(r.sae) && isNum(r.score.value))
      .sort((a, b) => b.score.value - a.score.value); // stable: ties keep the report's order
    order.forEach((row, i) => { row.rank = i + 1; });
    return rows;
  }

  function rankText(row) {
    if (row.rank !== null) return String(row.rank);
    return isControl(row.sae) ? "control" : "—";
  }

  function scoreText(s) {
    return s.none ? "—" : (s.partial ? "≥" : "") + fmt(s.value);
  }

  /** SAE − control InterpScore: a number only when both scores are exact (a partial score
   * is a lower bound, so a difference of two would bound nothing). */
  function scoreDifference(own, control) {
    if (own.none || control.none || own.partial || control.partial) return null;
    return own.value - control.value;
  }

  /** A control of the InterpScore, in words: ▲▼≈ only from a paired 95% interval on
   * SAE − control; without one the control's score and the difference, no verdict. */
  function scoreControl(row, k) {
    const d = scoreDifference(row.score, k.score);
    const diff = d === null ? "" : ", Δ " + (d > 0 ? "+" : "") + fmt(d);
    const text = (k.kind || "control") + " " + scoreText(k.score) + diff + (k.side ? " " + SIDE_MARK[k.side] : "");
    const title = k.name + ": InterpScore " + scoreText(k.score) + " " + ciText(k.ci)
      + (k.side ? "; SAE − control " + ciText(k.differenceCi) + ", " + SIDE_TEXT[k.side]
        : d === null ? "; no difference: a score is missing or partial (a lower bound)"
          : "; no paired interval on the difference: no verdict");
    return el("span", { class: "ctl " + (SIDE_CLASS[k.side] || ""), title }, text);
  }

  function visible(row) {
    const f = state.filters;
    const sae = row.sae;
    if (!state.showControls && isControl(sae)) return false;
    if (f.model && sae.model !== f.model) return false;
    if (f.hook && sae.hook !== f.hook) return false;
    if (f.architecture && sae.architecture !== f.architecture) return false;
    if (f.q && !sae.id.toLowerCase().includes(f.q.toLowerCase())) return false;
    return true;
  }

  function saeLink(id) {
    return el("a", { href: "#sae=" + encodeURIComponent(id), class: "sae-link" }, id);
  }

  // A component is higher-better: above its control is the good side.
  const SIDE_MARK = { above: "▲", below: "▼", tied: "≈" };
  const SIDE_CLASS = { above: "yes", below: "no", tied: "no" };
  const SIDE_TEXT = {
    above: "above the control (95% CI of the difference > 0)",
    below: "below the control (95% CI of the difference < 0)",
    tied: "not distinguished (95% CI of the difference covers 0)",
  };

  function controlLabel(c) {
    return c.kind === "model" ? c.name.replace(/^control-/, "") : (c.kind || "control");
  }

  /** A comparison that broke (error) or was not run (skipped) is shown as such, never as
   * evidence either way. */
  function controlState(c) {
    return c.error ? "error" : c.skipped ? "skipped" : null;
  }

  function controlMarks(metric) {
    if (!metric || !metric.controls.length) return null;
    const span = el("span", { class: "ctl" });
    metric.controls.forEach((c, i) => {
      const broken = controlState(c);
      const mark = broken ? "" : SIDE_MARK[c.side] || "";
      const title = c.name + " (" + (c.kind || "control") + "): " + (broken ? broken + ": " + (c.error || c.skipped)
        : fmt(c.value) + ", difference " + fmt(c.difference) + " " + ciText(c.difference_ci95)
          + (c.side ? ", " + SIDE_TEXT[c.side] : ""));
      append(span, [i ? el("br") : null, el("span", { title, class: c.error ? "warn control-error" : SIDE_CLASS[c.side] || "" },
        controlLabel(c) + " " + (broken || fmt(c.value)) + (mark ? " " + mark : ""))]);
    });
    return span;
  }

  // ---------------------------------------------------------------- the table

  function columns(weights) {
    const comps = Object.keys(weights);
    for (const n of Object.keys(REPORT_WEIGHTS)) if (!comps.includes(n)) comps.push(n);
    const cols = [
      { key: "rank", label: "#", num: true, value: (r) => r.rank },
      { key: "id", label: "SAE", value: (r) => r.sae.id },
      { key: "score", label: "InterpScore", num: true, value: (r) => r.score.value },
    ];
    for (const name of comps) {
      cols.push({
        key: "c:" + name, label: name, num: true, component: name,
        title: (DATA.known_components[name] || "") + " (weight " + (weights[name] || 0) + ")",
        value: (r) => (isNum(r.sae.components[name]) ? r.sae.components[name] : null),
      });
    }
    cols.push(
      { key: "controls", label: "score controls", value: null },
      { key: "l0", label: "L0", num: true, value: (r) => r.sae.l0 },
      { key: "d_sae", label: "d_sae", num: true, value: (r) => r.sae.d_sae },
      { key: "architecture", label: "architecture", value: (r) => r.sae.architecture },
      { key: "model", label: "model", value: (r) => r.sae.model },
      { key: "hook", label: "hook", value: (r) => r.sae.hook },
    );
    return cols;
  }

  function compare(col, dir) {
    return (a, b) => {
      const x = col.value(a);
      const y = col.value(b);
      const xm = x === null || x === undefined;
      const ym = y === null || y === undefined;
      if (xm || ym) return xm === ym ? 0 : xm ? 1 : -1; // missing last either way
      if (col.num) return dir * (x - y);
      return dir * String(x).localeCompare(String(y));
    };
  }

  function renderTable(rows) {
    const weights = state.applied.weights;
    const cols = columns(weights);
    const col = cols.find((c) => c.key === state.sort.key && c.value) || cols[0];
    const shown = rows.filter(visible).sort(compare(col, state.sort.dir)); // Array.sort is stable
    const head = el("tr", {}, cols.map((c) => el("th", {
      class: (c.num ? "num " : "") + (c.value ? "sortable" : ""), "data-key": c.key, title: c.title || null,
      "aria-sort": c.key === col.key ? (state.sort.dir > 0 ? "ascending" : "descending") : null,
      onclick: c.value ? () => sortBy(c) : null,
    }, c.label)));
    const body = shown.map((r) => {
      const sae = r.sae;
      const cells = cols.map((c) => {
        if (c.key === "rank") return el("td", { class: "num rank", title: r.rank === null && !isControl(sae) ? "no InterpScore: not ranked" : null }, rankText(r));
        if (c.key === "id") {
          return el("td", {}, [saeLink(sae.id),
            isControl(sae) ? el("span", { class: "badge", title: "a model control: not ranked" }, sae.control_of ? "control of " + sae.control_of : "control") : null,
            sae.status && sae.status !== "ok" ? el("span", { class: "badge" }, sae.status) : null]);
        }
        if (c.component) {
          const value = sae.components[c.component];
          const metric = sae.metrics[c.component];
          if (!isNum(value)) return el("td", { class: "num missing", title: "missing: counts as 0" }, "—");
          return el("td", { class: "num" }, [fmt(value), el("span", { class: "ci" }, ciText(metric && metric.ci95)), controlMarks(metric)]);
        }
        if (c.key === "score") {
          return el("td", { class: "num score", "data-score": String(r.score.value), "data-partial": String(r.score.partial),
            title: r.score.none ? "no InterpScore: the run could not score this SAE" : r.score.partial ? "partial: missing " + r.score.missing.join(", ") + " (count as 0)" : null },
            [scoreText(r.score), el("span", { class: "ci" }, r.ci ? ciText(r.ci) : "")]);
        }
        if (c.key === "controls") {
          return el("td", {}, r.controls.map((k) => scoreControl(r, k)));
        }
        const v = c.value(r);
        return el("td", { class: c.num ? "num" : "" }, c.num ? fmt(v, c.key === "d_sae" ? 0 : 1) : v === null || v === undefined ? "—" : String(v));
      });
      return el("tr", { class: isControl(sae) ? "control" : "", "data-id": sae.id }, cells);
    });
    return el("div", { class: "table-wrap" }, el("table", { id: "leaderboard" }, [el("thead", {}, head), el("tbody", {}, body)]));
  }

  function sortBy(col) {
    if (state.sort.key === col.key) state.sort.dir = -state.sort.dir;
    else state.sort = { key: col.key, dir: col.num && col.key !== "rank" ? -1 : 1 };
    renderBoard();
  }

  function select(id, label, values, current, onchange) {
    const options = [el("option", { value: "" }, "all")].concat(
      values.map((v) => el("option", { value: v, selected: v === current }, v)));
    return el("label", {}, [label, el("select", { id, onchange: (e) => onchange(e.target.value) }, options)]);
  }

  function unique(key) {
    return Array.from(new Set(DATA.saes.map((s) => s[key]).filter((v) => v !== null && v !== undefined).map(String))).sort();
  }

  function renderFilters() {
    const f = state.filters;
    return el("div", { class: "filters" }, [
      select("filter-model", "model", unique("model"), f.model, (v) => { f.model = v; renderBoard(); }),
      select("filter-hook", "hook", unique("hook"), f.hook, (v) => { f.hook = v; renderBoard(); }),
      select("filter-architecture", "architecture", unique("architecture"), f.architecture, (v) => { f.architecture = v; renderBoard(); }),
      el("label", {}, ["search SAE id", el("input", { id: "filter-q", type: "search", value: f.q, oninput: (e) => { f.q = e.target.value; renderBoard(true); } })]),
      el("label", {}, ["model controls", el("span", {}, [el("input", { id: "show-controls", type: "checkbox", checked: state.showControls, onchange: (e) => { state.showControls = e.target.checked; renderBoard(); } }), " show"])]),
    ]);
  }

  // ---------------------------------------------------------------- plots

  function scale(values, from, to, log) {
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    if (log) { lo = Math.log10(lo); hi = Math.log10(hi); }
    if (hi === lo) { lo -= 0.5; hi += 0.5; }
    const pad = (hi - lo) * 0.08;
    lo -= pad; hi += pad;
    const f = (v) => from + ((log ? Math.log10(v) : v) - lo) / (hi - lo) * (to - from);
    const ticks = [];
    const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / 4)));
    const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (hi - lo) / s <= 6);
    for (let t = Math.ceil(lo / nice) * nice; t <= hi; t += nice) ticks.push(log ? Math.pow(10, t) : t);
    f.ticks = ticks;
    return f;
  }

  function tickText(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e4 || a < 1e-2)) return v.toPrecision(2);
    return String(Math.round(v * 1000) / 1000);
  }

  /** An SVG scatter: points {x, y, lo, hi, id, control, frontier}, with axes and tooltips. */
  function scatter(id, points, xLabel, yLabel, frontier) {
    const W = 560, H = 340, L = 60, R = 15, T = 15, B = 45;
    const root = svg("svg", { id, width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": yLabel + " against " + xLabel });
    if (!points.length) {
      root.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no SAE has both values"));
      return root;
    }
    const xs = points.map((p) => p.x);
    const log = Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) >= 8;
    const ys = points.flatMap((p) => [p.y, p.lo, p.hi].filter(isNum));
    const sx = scale(xs, L, W - R, log);
    const sy = scale(ys, H - B, T, false);
    for (const t of sx.ticks) {
      root.appendChild(svg("line", { class: "grid", x1: sx(t), x2: sx(t), y1: T, y2: H - B }));
      root.appendChild(svg("text", { x: sx(t), y: H - B + 14, "text-anchor": "middle" }, tickText(t)));
    }
    for (const t of sy.ticks) {
      root.appendChild(svg("line", { class: "grid", x1: L, x2: W - R, y1: sy(t), y2: sy(t) }));
      root.appendChild(svg("text", { x: L - 5, y: sy(t) + 4, "text-anchor": "end" }, tickText(t)));
    }
    root.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    root.appendChild(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    root.appendChild(svg("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle" }, xLabel + (log ? " (log scale)" : "")));
    root.appendChild(svg("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle", transform: "rotate(-90 14 " + (T + H - B) / 2 + ")" }, yLabel));
    if (frontier && frontier.length) {
      root.appendChild(svg("polyline", { class: "frontier-line", points: frontier.map((p) => sx(p.x) + "," + sy(p.y)).join(" ") },
        svg("title", {}, "Pareto frontier: " + frontier.map((p) => p.id).join(", "))));
    }
    for (const p of points) {
      if (isNum(p.lo) && isNum(p.hi)) root.appendChild(svg("line", { class: "err", x1: sx(p.x), x2: sx(p.x), y1: sy(p.lo), y2: sy(p.hi) }));
    }
    for (const p of points) {
      const label = p.id + ": " + xLabel + " " + fmt(p.x) + ", " + yLabel + " " + fmt(p.y) + (p.control ? " (control)" : "") + (p.frontier ? " (on the frontier)" : "");
      root.appendChild(svg("circle", { class: "pt" + (p.control ? " control" : "") + (p.frontier ? " frontier" : ""), cx: sx(p.x), cy: sy(p.y), r: 5, "data-id": p.id },
        svg("title", {}, label)));
    }
    return root;
  }

  /** SAEs (not controls) that no other SAE beats on both lower L0 and higher loss_recovered. */
  function paretoFrontier(points) {
    const saes = points.filter((p) => !p.control).sort((a, b) => a.x - b.x || b.y - a.y);
    const out = [];
    let best = -Infinity;
    for (const p of saes) if (p.y > best) { out.push(p); best = p.y; }
    for (const p of out) p.frontier = true;
    return out;
  }

  function metricPoints(rows, name) {
    return rows.filter((r) => isNum(r.sae.l0) && r.sae.metrics[name] && isNum(r.sae.metrics[name].value)).map((r) => {
      const m = r.sae.metrics[name];
      return { x: r.sae.l0, y: m.value, lo: m.ci95 ? m.ci95[0] : null, hi: m.ci95 ? m.ci95[1] : null, id: r.sae.id, control: isControl(r.sae) };
    });
  }

  function renderPlots(rows) {
    const shown = rows.filter(visible);
    const front = metricPoints(shown, "loss_recovered");
    const frontier = paretoFrontier(front);
    const numeric = DATA.metric_names.filter((n) => DATA.saes.some((s) => s.metrics[n] && isNum(s.metrics[n].value)));
    const chooser = el("select", { id: "metric-select", onchange: (e) => { state.metric = e.target.value; renderBoard(); } },
      numeric.map((n) => el("option", { value: n, selected: n === state.metric }, n)));
    return el("div", { class: "plots" }, [
      el("div", { class: "plot" }, [el("h3", {}, "L0 against loss_recovered: the frontier"),
        scatter("frontier-plot", front, "L0", "loss_recovered", frontier),
        el("p", { class: "note" }, "Green: the Pareto frontier (no other SAE has both a lower L0 and a higher loss_recovered). Orange: model controls. Bars: 95% CI.")]),
      el("div", { class: "plot" }, [el("h3", {}, ["L0 against ", el("label", {}, chooser)]),
        scatter("metric-plot", metricPoints(shown, state.metric), "L0", state.metric, null)]),
    ]);
  }

  // ---------------------------------------------------------------- evidence

  function genericTable(id, rows) {
    const keys = [];
    for (const row of rows) for (const k of Object.keys(row)) if (!keys.includes(k)) keys.push(k);
    return el("div", { class: "table-wrap" }, el("table", { id }, [
      el("thead", {}, el("tr", {}, keys.map((k) => el("th", {}, k)))),
      el("tbody", {}, rows.map((row) => el("tr", {}, keys.map((k) => el("td", {}, row[k] === undefined ? "" : String(row[k])))))),
    ]));
  }

  // ---------------------------------------------------------------- views

  let rowsCache = null;

  function renderBoard(keepFocus) {
    rowsCache = scoredRows();
    const board = document.getElementById("board");
    const focused = keepFocus ? document.activeElement && document.activeElement.id : null;
    const caret = focused ? document.activeElement.selectionStart : null;
    clear(board);
    const original = sameAsReport(state.applied.weights);
    append(board, [
      el("h2", {}, "Leaderboard"),
      el("p", { class: "note" }, [
        "InterpScore v" + (original ? DATA.formula.version : state.applied.version + " (edited in this page)") + " = ",
        el("code", { id: "expression" }, Object.entries(state.applied.weights).map(([n, w]) => w + "·" + n).join(" + ")),
        ". ≥ marks a partial score (missing components count as 0). Under each value: its 95% CI and its controls (▲ above the control, ▼ below it, ≈ not distinguished: the paired 95% interval on the difference)."
          + (original ? "" : " Intervals need the bootstrap replicates and are shown for the report's formula only."),
      ]),
      renderFilters(),
      renderTable(rowsCache),
      el("p", { class: "note" }, ["Model controls (SAEs of a randomized transformer) are listed and flagged, not ranked. Click a column header to sort. ", el("a", { href: "#formula-panel" }, "Edit the formula"), " below."]),
      el("h2", {}, "Plots"),
      renderPlots(rowsCache),
      DATA.evidence.length ? el("h2", {}, "Formula evidence") : null,
      DATA.evidence.length ? el("p", { class: "note" }, "Which components tell trained SAEs from their controls: for each control, how many trained SAEs lie above it (the paired 95% interval on SAE − control above zero); a component separates when every measured control is beaten by every trained SAE. v0.0.2-controls is built only from components that do (interpscore evidence REPORT.json prints this table).") : null,
      DATA.evidence.length ? genericTable("evidence", DATA.evidence) : null,
    ]);
    if (focused) {
      const again = document.getElementById(focused);
      if (again) { again.focus(); if (caret !== null && again.setSelectionRange) again.setSelectionRange(caret, caret); }
    }
    if (currentSae()) renderSae();
  }

  function identity(sae) {
    const fields = [["sae_repo", sae.sae_repo], ["model", sae.model], ["hook", sae.hook], ["layer", sae.layer],
      ["architecture", sae.architecture], ["d_in", sae.d_in], ["d_sae", sae.d_sae], ["k", sae.k],
      ["tokens trained", sae.tokens_trained], ["evaluation tokens", sae.eval_tokens], ["status", sae.status],
      ["report", DATA.reports[sae.source] ? DATA.reports[sae.source].name : null]];
    const dl = el("dl", { class: "identity" });
    for (const [k, v] of fields) if (v !== null && v !== undefined) append(dl, [el("dt", {}, k), el("dd", {}, String(v))]);
    if (sae.control_of) append(dl, [el("dt", {}, "control of"), el("dd", {}, saeLink(sae.control_of))]);
    for (const e of sae.errors) append(dl, [el("dt", { class: "warn" }, "error"), el("dd", {}, e)]);
    return dl;
  }

  function marked(text) {
    // Autointerp examples mark the activating tokens with << >>; shown with <mark>, as text.
    const span = el("span", { class: "ex" });
    const parts = String(text).split(/<<|>>/);
    parts.forEach((part, i) => append(span, i % 2 ? el("mark", {}, part) : part));
    return span;
  }

  function currentSae() {
    const m = /^#sae=(.*)$/.exec(location.hash);
    if (!m) return null;
    let id;
    try { id = decodeURIComponent(m[1]); } catch (e) { return null; }
    return DATA.saes.find((s) => s.id === id) || null;
  }

  function renderSae() {
    const view = document.getElementById("sae-view");
    const sae = currentSae();
    clear(view);
    if (!sae) return;
    const row = rowsCache.find((r) => r.sae === sae);
    const weights = state.applied.weights;
    const comps = Object.keys(weights);
    for (const n of componentOrder().concat(Object.keys(sae.components))) if (!comps.includes(n) && n in sae.components) comps.push(n);
    const breakdown = comps.map((name) => {
      const metric = sae.metrics[name];
      const value = sae.components[name];
      const w = weights[name] || 0;
      return el("tr", { "data-component": name }, [
        el("td", { title: DATA.known_components[name] || "" }, name), el("td", { class: "num" }, String(w)),
        el("td", { class: isNum(value) ? "num" : "num missing" }, isNum(value) ? fmt(value) : "missing"),
        el("td", { class: "num" }, ciText(metric && metric.ci95)),
        el("td", { class: "num" }, name in row.score.contributions ? fmt(row.score.contributions[name]) : w && !row.score.none ? "0 (missing)" : "—"),
        el("td", {}, controlMarks(metric)),
      ]);
    });
    const controlRows = row.controls.map((k) => el("tr", { "data-control": k.name }, [el("td", {}, k.name), el("td", {}, k.kind || ""),
      el("td", { class: "num" }, scoreText(k.score)), el("td", { class: "num" }, ciText(k.ci)),
      el("td", { class: "num" }, [fmt(scoreDifference(row.score, k.score)), el("span", { class: "ci" }, ciText(k.differenceCi))]),
      el("td", {}, k.side ? el("span", { class: SIDE_CLASS[k.side] }, SIDE_MARK[k.side] + " " + SIDE_TEXT[k.side]) : "no paired interval: no verdict"),
      el("td", {}, k.score.missing.join(", "))]));
    const metricRows = Object.entries(sae.metrics).map(([name, m]) => el("tr", { "data-metric": name }, [
      el("td", {}, name), el("td", { class: "num" }, fmt(m.value)),
      el("td", { class: "num" }, ciText(m.ci95) + (m.ci95 && m.ci_unit ? " per " + m.ci_unit : "")),
      el("td", {}, [m.status || "", m.reason ? el("span", { class: "ci" }, m.reason) : null, m.error ? el("span", { class: "ci warn" }, m.error) : null]),
      el("td", {}, m.controls.map((c) => el("span", { class: "ctl" }, [c.name + " (" + (c.kind || "control") + "): ",
        c.error ? el("span", { class: "warn control-error", title: c.error }, "error: " + c.error)
          : c.skipped ? "skipped: " + c.skipped : fmt(c.value) + ", Δ " + fmt(c.difference) + " " + ciText(c.difference_ci95) + " ",
        !controlState(c) && c.side ? el("span", { class: SIDE_CLASS[c.side] }, SIDE_MARK[c.side] + " " + SIDE_TEXT[c.side]) : ""]))),
    ]));
    const details = Object.entries(sae.metrics).filter(([, m]) => Object.keys(m.details).length || m.details_omitted.length).map(([name, m]) =>
      el("details", {}, [el("summary", {}, name), Object.keys(m.details).length ? el("pre", {}, JSON.stringify(m.details, null, 1)) : null,
        m.details_omitted.length ? el("p", { class: "note" }, "In the report only (large): " + m.details_omitted.join(", ")) : null]));
    const autointerp = sae.autointerp.map((a) => el("div", { class: "autointerp" }, [
      el("h3", {}, a.metric + (a.scorer ? " (" + a.scorer + " scorer)" : "") + ": " + fmt(a.value) + " " + ciText(a.ci95)),
      Object.keys(a.null_values).length ? el("p", { class: "note" }, "null values: " + Object.entries(a.null_values).map(([k, v]) => k + " " + fmt(v)).join(", ")) : null,
      el("ol", { class: "showcase" }, a.showcase.map((s) => el("li", {}, [el("strong", {}, "latent " + s.latent + ": "), s.explanation, ...s.examples.map(marked)]))),
    ]));
    append(view, [
      el("p", {}, el("a", { href: "#", id: "back" }, "← leaderboard")),
      el("h2", { id: "sae-title" }, [sae.id, isControl(sae) ? el("span", { class: "badge" }, "model control") : null]),
      identity(sae),
      el("p", { id: "sae-score" }, ["InterpScore ", el("strong", {}, scoreText(row.score)), " " + ciText(row.ci),
        row.rank ? " — rank " + row.rank + " of " + rowsCache.filter((r) => r.rank).length
          : isControl(sae) ? " — not ranked (control)" : " — not ranked (no InterpScore)",
        row.score.partial ? " (partial: missing " + row.score.missing.join(", ") + ", counted as 0)" : ""]),
      el("h3", {}, "Components, weights and contributions"),
      el("table", { id: "breakdown" }, [el("thead", {}, el("tr", {}, ["component", "weight", "value", "95% CI", "contribution", "controls"].map((h) => el("th", {}, h)))), el("tbody", {}, breakdown)]),
      row.controls.length ? el("h3", {}, "Controls of the InterpScore") : null,
      row.controls.length ? el("table", { id: "score-controls" }, [el("thead", {}, el("tr", {}, ["control", "kind", "InterpScore", "95% CI", "SAE − control", "verdict (paired 95% CI)", "missing"].map((h) => el("th", {}, h)))), el("tbody", {}, controlRows)]) : null,
      el("h3", {}, "Every metric"),
      el("div", { class: "table-wrap" }, el("table", { id: "metrics" }, [el("thead", {}, el("tr", {}, ["metric", "value", "95% CI", "status", "controls"].map((h) => el("th", {}, h)))), el("tbody", {}, metricRows)])),
      details.length ? el("h3", {}, "Details") : null,
      ...details,
      autointerp.length ? el("h3", {}, "Autointerp explanations") : null,
      ...autointerp,
    ]);
  }

  function route() {
    const sae = currentSae();
    document.getElementById("board").hidden = !!sae;
    document.getElementById("sae-view").hidden = !sae;
    if (sae) { renderSae(); document.title = sae.id + " — InterpScore"; window.scrollTo(0, 0); }
    else document.title = "InterpScore leaderboard";
  }

  // ---------------------------------------------------------------- formula panel

  function renderFormulaPanel() {
    const panel = document.getElementById("formula-panel");
    clear(panel);
    const status = el("p", { id: "formula-status" });
    const sum = el("span", { id: "weight-sum" });
    const preview = el("pre", { id: "formula-toml" });
    const button = el("button", { id: "download-formula", type: "button", onclick: () => { const f = readFormula(); if (f.valid) download(f); } }, "Download formula (.toml)");
    function update() {
      const f = readFormula();
      sum.textContent = f.sum.toFixed(6);
      sum.className = Math.abs(f.sum - 1) <= DATA.weight_sum_tolerance ? "valid" : "invalid";
      button.disabled = !f.valid;
      clear(status);
      if (f.scorable) {
        status.className = f.valid ? "valid" : "invalid";
        append(status, f.valid ? "Valid formula: the table, plots and SAE pages use it."
          : "The table, plots and SAE pages use these weights; no download: " + f.problems.join("; ") + ".");
        state.applied = f;
        preview.textContent = f.valid ? formulaToml(f) : "";
        renderBoard();
      } else {
        status.className = "invalid";
        append(status, "Invalid formula (no download; the table keeps the last valid one): " + f.problems.join("; ") + ".");
        preview.textContent = "";
      }
    }
    const rows = componentOrder().map((name) => {
      const inReport = DATA.saes.some((s) => isNum(s.components[name]));
      return el("tr", {}, [
        el("td", {}, el("label", { for: "w-" + name }, name)),
        el("td", {}, el("input", { id: "w-" + name, "data-component": name, type: "number", min: 0, max: 1, step: 0.01, value: state.text[name],
          oninput: (e) => { state.text[name] = e.target.value; update(); } })),
        el("td", { class: "note" }, (DATA.known_components[name] || "") + (inReport ? "" : " — not among the reports' components: scores count it as missing (0), as interpscore score does")),
      ]);
    });
    append(panel, [
      el("h2", {}, "Formula"),
      el("p", { class: "note" }, "Edit the weights: scores and ranks are recomputed here exactly as `interpscore score REPORT --formula FILE` does (missing components add 0 and mark the score partial; weights are never renormalised). A valid formula has weights in [0, 1] summing to 1 (±" + DATA.weight_sum_tolerance + ") and a version that is not built in (" + DATA.builtin_versions.join(", ") + ")."),
      el("table", { id: "weights" }, [el("thead", {}, el("tr", {}, [el("th", {}, "component"), el("th", {}, "weight"), el("th", {}, "definition")])), el("tbody", {}, rows),
        el("tfoot", {}, el("tr", {}, [el("th", {}, "sum"), el("th", {}, sum), el("th", {}, isNum(DATA.formula.l0_target) ? "l0_score target L0 = " + DATA.formula.l0_target + " (as measured)" : "")]))]),
      el("p", { class: "meta" }, [el("label", {}, ["version ", el("input", { id: "formula-version", type: "text", value: state.version, oninput: (e) => { state.version = e.target.value; update(); } })]), " ",
        el("label", {}, ["description ", el("input", { id: "formula-description", type: "text", value: state.description, oninput: (e) => { state.description = e.target.value; update(); } })])]),
      status,
      el("p", {}, ["Start from a published formula: "].concat(DATA.formulas.map((f) => el("button", { type: "button", class: "load-formula", "data-version": f.version, title: f.description,
        onclick: () => { loadWeights(f.weights); state.version = f.version; renderFormulaPanel(); } }, "v" + f.version)))),
      el("p", {}, [button, " ", el("button", { id: "reset-formula", type: "button", onclick: () => { resetWeights(); renderFormulaPanel(); } }, "Reset to the report's formula")]),
      el("details", {}, [el("summary", {}, "The file (use: interpscore score REPORT.json --formula FILE)"), preview]),
    ]);
    update();
  }

  // ---------------------------------------------------------------- start

  function start() {
    const n = DATA.saes.filter((s) => !isControl(s)).length;
    const runs = DATA.reports.map((r) => r.name + (r.dataset ? " (dataset " + r.dataset + ", " + r.tokens + " tokens, seed " + r.seed + ", " + r.timestamp + ")" : "")).join("; ");
    document.getElementById("summary").textContent = n + " SAE(s) and " + (DATA.saes.length - n) + " model control(s) from " + runs + ". Formula v" + DATA.formula.version + (DATA.rescored ? " (re-scored by interpscore site --formula)" : "") + ".";
    state.applied = { weights: Object.assign({}, REPORT_WEIGHTS), version: DATA.formula.version };
    resetWeights();
    renderFormulaPanel();
    window.addEventListener("hashchange", route);
    route();
  }

  start();
})();
