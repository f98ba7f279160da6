import Foundation
import Testing
import TributaryCore
import TributaryPostgres

/// The status page `run` serves at `/`, as headless Chromium renders it, against `status --json`;
/// and what a security review asks of it.
@Suite(.clusterLoad) struct StatusPageTests {
    func get(_ port: Int, _ path: String, method: String = "GET") async throws -> (status: Int, body: String, headers: String) {
        let outcome = try await TestProcess.run("/usr/bin/curl", ["-s", "-m", "10", "-X", method, "-D", "-", "-w", "\n%{http_code}",
                                                                   "http://127.0.0.1:\(port)\(path)"])
        let lines = outcome.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
        let text = lines.dropLast().joined(separator: "\n")
        let split = text.range(of: "\r\n\r\n")
        return (Int(lines.last ?? "") ?? 0, split.map { String(text[$0.upperBound...]) } ?? text, split.map { String(text[..<$0.lowerBound]) } ?? "")
    }

    static func statusJSON(_ fixture: PipelineFixture) async throws -> [String: [String: Any]] {
        let outcome = try await fixture.tributary(["status", "--json"])
        let json = (try? JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8))) as? [String: Any]
        var result: [String: [String: Any]] = [:]
        for source in (json?["sources"] as? [[String: Any]]) ?? [] { result[source["source"] as! String] = source }
        return result
    }

    @Test func thePageShowsWhatStatusSaysWhileRunReplicatesAndASourceStoppedShowsItsWarning() async throws {
        let fixture = try await DemoSources.fixture("page")
        let port = try TestClusters.freePort()
        try await fixture.withRun(["--metrics-port", String(port)]) { _ in
            try await fixture.waitUntilApplied(["qvp", "svp"], seconds: 120)
            let load = try await BackgroundLoad.start(fixture)
            // The chart draws from the second sample on.
            try await eventually("the page's history has two samples of each source", seconds: 60) {
                let answer = try await TestProcess.run("/usr/bin/curl", ["-s", "-m", "5", "http://127.0.0.1:\(port)/status.json"])
                let history = ((try? JSONSerialization.jsonObject(with: Data(answer.standardOutput.utf8))) as? [String: Any])?["history"] as? [String: [Any]]
                return ["qvp", "svp"].allSatisfy { (history?[$0]?.count ?? 0) >= 2 }
            }
            // Rendered, then status asked at once: the same state, and lag within one refresh of each other.
            let dom = try await HeadlessBrowser.dom("http://127.0.0.1:\(port)/")
            let status = try await Self.statusJSON(fixture)
            for name in ["qvp", "svp"] {
                guard let shown = HeadlessBrowser.source(name, in: dom) else {
                    throw TestFailure("the page shows no source \(name): \(dom.suffix(3000))")
                }
                #expect(shown.fields["state"] == status[name]?["state"] as? String, "\(name): \(shown.fields) against \(status[name] ?? [:])")
                let pageLag = Double(shown.values["lag-seconds"] ?? "")
                let statusLag = status[name]?["lag_seconds"] as? Double
                #expect(pageLag != nil && statusLag != nil, "\(name): lag shown \(shown.values), status \(String(describing: statusLag))")
                if let pageLag, let statusLag {
                    #expect(abs(pageLag - statusLag) <= Double(StatusPageRefresh.seconds) + 1, "\(name): page \(pageLag) s, status \(statusLag) s")
                }
            }
            #expect(dom.contains("<polyline"), "the lag chart has its samples")
            #expect(dom.contains(#"data-model="contract""#), "the BL models are listed")
            try await load.stop()

            // A source stopped by an operator: its warning, with the fix, on the page.
            #expect(try await fixture.tributary(["pause", "svp"]).status == 0)
            var warnings: [String] = []
            try await eventually("the page shows svp paused", seconds: 30) {
                let shown = HeadlessBrowser.source("svp", in: try await HeadlessBrowser.dom("http://127.0.0.1:\(port)/"))
                warnings = shown?.warnings ?? []
                return shown?.fields["state"] == "paused"
            }
            #expect(warnings.contains("paused: the source retains WAL for the slot until tributary resume svp"), "\(warnings)")
            #expect(try await fixture.tributary(["resume", "svp"]).status == 0)
        }
    }

    @Test func thePageChangesNothingEscapesWhatItShowsAndAdmitsOnlyItsOwnScript() async throws {
        var fixture = try await PipelineFixture.make("page-safety", sources: [("qvp", ["public.items"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 200ms\n  heartbeat: 300ms\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("CREATE TABLE items (id int PRIMARY KEY, v int); INSERT INTO items VALUES (1, 1)")
        #expect(try await fixture.tributary(["snapshot", "--apply"]).status == 0)
        let port = try TestClusters.freePort()
        let hostile = #"<script>document.title='pwned'</script>"#
        try await fixture.withRun(["--metrics-port", String(port)]) { _ in
            // A table renamed on the source to markup: status names it in a warning and a schema change.
            try await source.execute(#"ALTER TABLE items RENAME TO "\#(hostile)"; INSERT INTO "\#(hostile)" VALUES (2, 2)"#)
            try await fixture.waitUntilApplied(["qvp"])
            var dom = ""
            try await eventually("the page names the renamed table", seconds: 30) {
                dom = try await HeadlessBrowser.dom("http://127.0.0.1:\(port)/")
                return dom.contains("renamed to public.")
            }
            #expect(dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"), "shown as text: \(dom.suffix(2000))")
            #expect(!dom.contains(hostile), "never as markup")
            #expect(dom.contains("<title>tributary status</title>"), "the injected script did not run")

            let page = try await get(port, "/")
            #expect(page.status == 200 && page.headers.lowercased().contains("content-type: text/html"))
            let policy = page.headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-security-policy:") }.map(String.init) ?? ""
            #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'sha256-") && policy.contains("connect-src 'self'"), "\(page.headers)")
            #expect(!page.body.contains("qvp"), "the document holds no data: it comes from status.json")
            #expect(page.headers.lowercased().contains("x-content-type-options: nosniff"))
            let data = try await get(port, "/status.json")
            #expect(data.status == 200 && data.headers.lowercased().contains("content-type: application/json") && data.body.contains(#""sources""#))

            // No route changes anything: every other method is refused, on every path.
            for path in ["/", "/status.json", "/metrics", "/healthz", "/readyz"] {
                for method in ["POST", "PUT", "DELETE", "PATCH"] {
                    let answer = try await get(port, path, method: method)
                    #expect(answer.status >= 400, "\(method) \(path) answered \(answer.status)")
                }
            }
        }
    }
}

/// How often the page asks for `status.json` (the tolerance of a comparison with `status`).
enum StatusPageRefresh {
    static let seconds = 2
}
