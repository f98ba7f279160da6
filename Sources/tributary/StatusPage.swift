import Foundation
import TributaryCore

/// The status page `run` serves at `/` on its operations port: one HTML document with its style
/// and script inlined (operators' hosts often reach no CDN), which polls `status.json` and draws
/// what it says. It reads state only: no form, no button, no route that changes anything. Every
/// value from the status goes into the page as text (`textContent`, `setAttribute`), never as
/// markup, so a table named `<script>…` shows as that text; the Content-Security-Policy admits
/// exactly the inlined style and script (by their SHA-256) and requests to this server only.
enum StatusPage {
    /// How often the page asks for `status.json`.
    static let refreshMilliseconds = 2000

    static let style = """
        :root { color-scheme: light dark; --ok: #2e7d32; --warn: #b26a00; --bad: #c62828; --muted: #777; }
        body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 12px 20px; }
        header { display: flex; gap: 16px; align-items: baseline; border-bottom: 1px solid #8884; margin-bottom: 8px; }
        header h1 { font-size: 20px; margin: 0; } .muted { color: var(--muted); }
        h2 { font-size: 16px; margin: 18px 0 6px; }
        .sources { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; }
        article.source { border: 1px solid #8886; border-radius: 6px; padding: 8px 12px; }
        article.source h3 { margin: 0 0 6px; font-size: 16px; display: flex; gap: 10px; align-items: center; }
        .state { font-size: 12px; padding: 1px 8px; border-radius: 10px; background: #8883; }
        .state.running, .state.current, .state.done, .state.identical { background: var(--ok); color: white; }
        .state.paused, .state.draining, .state.behind, .state.drained { background: var(--warn); color: white; }
        .state.slot-lost, .state.failed, .state.differs { background: var(--bad); color: white; }
        dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
        dt { color: var(--muted); } dd { margin: 0; font-variant-numeric: tabular-nums; }
        svg.chart { width: 100%; height: 110px; margin-top: 6px; }
        svg.chart polyline { fill: none; stroke: #1e88e5; stroke-width: 1.5; }
        svg.chart line { stroke: #8886; } svg.chart text { font-size: 10px; fill: var(--muted); }
        ul.warnings { margin: 6px 0 0; padding-left: 18px; color: var(--bad); }
        table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #8883; }
        td.error { color: var(--bad); } #stale { color: var(--bad); font-weight: bold; }
        """

    static let script = """
        "use strict";
        const refreshMilliseconds = \(refreshMilliseconds);
        function el(tag, attributes, ...children) {
          const element = document.createElement(tag);
          for (const [name, value] of Object.entries(attributes || {})) {
            if (value !== undefined && value !== null) element.setAttribute(name, String(value));
          }
          for (const child of children) {
            if (child === undefined || child === null) continue;
            element.append(child instanceof Node ? child : document.createTextNode(String(child)));
          }
          return element;
        }
        function bytes(count) {
          if (count === undefined || count === null) return "-";
          const units = ["B", "KiB", "MiB", "GiB", "TiB"];
          let value = count, unit = 0;
          while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
          return (unit === 0 ? value : value.toFixed(1)) + " " + units[unit];
        }
        function seconds(value) { return value === undefined || value === null ? "-" : value.toFixed(1) + " s"; }
        function when(text) { return text ? new Date(text).toLocaleString() : "-"; }
        function lsn(text) {
          if (!text) return null;
          const [high, low] = text.split("/");
          return BigInt("0x" + high) * 4294967296n + BigInt("0x" + low);
        }
        function stateClass(state) { return "state " + String(state).replace(/[^a-z]+/g, "-"); }
        function chart(samples) {
          const ns = "http://www.w3.org/2000/svg", width = 600, height = 100, left = 40;
          const svg = document.createElementNS(ns, "svg");
          svg.setAttribute("class", "chart");
          svg.setAttribute("viewBox", "0 0 " + width + " " + (height + 12));
          const now = Date.now(), span = 3600 * 1000;
          const values = samples.filter(s => s.lag_seconds !== undefined && s.lag_seconds !== null);
          const top = Math.max(1, ...values.map(s => s.lag_seconds));
          const axis = document.createElementNS(ns, "line");
          for (const [name, value] of [["x1", left], ["y1", height], ["x2", width], ["y2", height]]) axis.setAttribute(name, value);
          svg.append(axis);
          const label = (x, y, text, anchor) => {
            const t = document.createElementNS(ns, "text");
            t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("text-anchor", anchor || "start");
            t.textContent = text; svg.append(t);
          };
          label(0, 10, top.toFixed(1) + " s"); label(0, height, "0 s");
          label(left, height + 11, "60 min ago"); label(width, height + 11, "now", "end");
          if (values.length > 0) {
            const points = values.map(s => {
              const x = left + (width - left) * Math.max(0, 1 - (now - new Date(s.at).getTime()) / span);
              const y = height - height * s.lag_seconds / top;
              return x.toFixed(1) + "," + y.toFixed(1);
            });
            const line = document.createElementNS(ns, "polyline");
            line.setAttribute("points", points.join(" "));
            svg.append(line);
          } else {
            label(left + 8, height / 2, "no samples yet: the chart fills as run reads the status");
          }
          return svg;
        }
        function source(status, samples) {
          const limit = status.safe_wal_bytes === undefined ? "no max_slot_wal_keep_size"
            : bytes(status.safe_wal_bytes) + " left before max_slot_wal_keep_size";
          return el("article", { class: "source", "data-source": status.source },
            el("h3", {}, status.source, el("span", { class: stateClass(status.state), "data-field": "state" }, status.state)),
            el("dl", {},
              el("dt", {}, "lag"), el("dd", { "data-field": "lag-seconds", "data-value": status.lag_seconds }, seconds(status.lag_seconds)),
              el("dt", {}, "WAL held on the source"), el("dd", { "data-field": "lag-bytes", "data-value": status.source_lag_bytes }, bytes(status.source_lag_bytes)),
              el("dt", {}, "changes/s"), el("dd", { "data-field": "changes-per-second" }, status.changes_per_second.toFixed(0)),
              el("dt", {}, "staged"), el("dd", { "data-field": "staged" }, status.staged_batches + " batches (" + bytes(status.staged_bytes) + ")"),
              el("dt", {}, "retained WAL"), el("dd", { "data-field": "retained" }, bytes(status.retained_wal_bytes) + ", " + limit),
              el("dt", {}, "replicator"), el("dd", {}, status.replicator_active === undefined ? "?" : status.replicator_active ? "consuming the slot" : "not consuming the slot"),
              el("dt", {}, "applied"), el("dd", {}, (status.applied_lsn || "-") + " at " + when(status.applied_commit_time))),
            chart(samples || []),
            status.warnings.length === 0 ? null : el("ul", { class: "warnings" }, ...status.warnings.map(w => el("li", { "data-field": "warning" }, w))));
        }
        function drain(statuses) {
          const draining = statuses.filter(s => s.drain_lsn);
          if (draining.length === 0) return null;
          return el("table", { id: "drain" }, el("tr", {}, el("th", {}, "source"), el("th", {}, "end"), el("th", {}, "applied"), el("th", {}, "to go")),
            ...draining.map(s => {
              const end = lsn(s.drain_lsn), applied = lsn(s.applied_lsn);
              const left = s.state === "drained" || (applied !== null && applied >= end) ? "reached" : applied === null ? "-" : bytes(Number(end - applied)) + " of WAL";
              return el("tr", { "data-source": s.source }, el("td", {}, s.source), el("td", {}, s.drain_lsn), el("td", {}, s.applied_lsn || "-"), el("td", {}, left));
            }));
        }
        function models(list) {
          return el("table", {}, el("tr", {}, ...["model", "state", "lag", "rows waiting", "last run", "error"].map(h => el("th", {}, h))),
            ...list.map(m => el("tr", { "data-model": m.model }, el("td", {}, m.model), el("td", {}, el("span", { class: stateClass(m.state) }, m.state)),
              el("td", {}, seconds(m.lag_seconds)), el("td", {}, m.rows_waiting), el("td", {}, when(m.last_run_at)), el("td", { class: "error" }, m.error || ""))));
        }
        function objects(list) {
          return el("table", {}, el("tr", {}, ...["mapping", "state", "pending", "copied", "failed", "only in the target", "finished", "error"].map(h => el("th", {}, h))),
            ...list.map(o => el("tr", { "data-mapping": o.mapping }, el("td", {}, o.mapping + " (" + o.source + " → " + o.target + ")"),
              el("td", {}, el("span", { class: stateClass(o.state) }, o.state)), el("td", {}, o.pending + " (" + bytes(o.pending_bytes) + ")"),
              el("td", {}, o.copied), el("td", {}, o.failed), el("td", {}, o.extra), el("td", {}, when(o.finished_at)), el("td", { class: "error" }, o.error || ""))));
        }
        function verify(last) {
          if (!last) return el("p", { class: "muted" }, "no verify has run yet (tributary verify)");
          const verdict = last.matches ? "identical" : "differs";
          return el("div", { id: "verify-result" },
            el("p", {}, el("span", { class: stateClass(verdict) }, verdict), " " + last.tables + " tables, " + when(last.finished_at)),
            last.differing.length === 0 ? null : el("ul", {}, ...last.differing.map(d => el("li", {}, d))),
            el("p", { class: "muted" }, ...last.points.map(p => p.source + " at " + (p.point || "now") + (p.held_seconds ? " (held " + p.held_seconds.toFixed(1) + " s) " : " "))));
        }
        function changes(statuses) {
          const all = statuses.flatMap(s => (s.schema_changes || []).map(c => ({ source: s.source, ...c })));
          if (all.length === 0) return null;
          return el("ul", {}, ...all.map(c => el("li", {}, when(c.at) + " " + c.source + " " + c.table + ": " + c.change + " (at " + c.lsn + ")")));
        }
        function section(id, title, content) {
          const target = document.getElementById(id);
          target.replaceChildren();
          if (content) target.append(el("h2", {}, title), content);
        }
        async function refresh() {
          try {
            const response = await fetch("status.json", { cache: "no-store" });
            if (!response.ok) throw new Error("status.json answered " + response.status);
            const page = await response.json();
            document.getElementById("stale").hidden = true;
            const report = page.status;
            if (!report) { document.getElementById("generated").textContent = "waiting for the first status reading…"; return; }
            document.getElementById("generated").textContent = "read " + when(report.generated_at);
            document.getElementById("generated").setAttribute("data-generated-at", report.generated_at);
            section("sources", "Sources", el("div", { class: "sources" }, ...report.sources.map(s => source(s, page.history[s.source]))));
            section("drain", "Drain", drain(report.sources));
            section("models", "BL models", report.models ? models(report.models) : null);
            section("objects", "Object files", report.objects ? objects(report.objects) : null);
            section("verify", "Last verify", verify(report.last_verify));
            section("changes", "Schema changes followed (7 days)", changes(report.sources));
          } catch (error) {
            const stale = document.getElementById("stale");
            stale.textContent = "the status could not be read: " + error.message + " (showing the last reading)";
            stale.hidden = false;
          }
        }
        refresh();
        setInterval(refresh, refreshMilliseconds);
        """

    static let html = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>tributary status</title><style>\(style)</style></head>
        <body><header><h1>tributary</h1><span id="generated" class="muted">waiting for the first status reading…</span><span id="stale" hidden></span></header>
        <main><section id="sources"></section><section id="drain"></section><section id="models"></section><section id="objects"></section>
        <section id="verify"></section><section id="changes"></section></main>
        <script>\(script)</script></body></html>
        """

    /// Only the inlined style and script run; data comes from this server only.
    static let contentSecurityPolicy: String = {
        func hash(_ text: String) -> String {
            let digest = SHA256Hasher()
            digest.update(Array(text.utf8))
            return "'sha256-\(Data(digest.finalizeBytes()).base64EncodedString())'"
        }
        return "default-src 'none'; script-src \(hash(script)); style-src \(hash(style)); connect-src 'self'; img-src 'self'; "
            + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    }()
}
