import Foundation
import Testing
import TributaryCore

/// The alert rules and the Grafana dashboard shipped in deploy/, against a real Prometheus
/// (Debian's): the rules check and pass their unit tests, and Prometheus scraping a demo `run`
/// answers every dashboard panel's expression with data.
@Suite(.clusterLoad) struct PrometheusTests {
    static let promtool = "/usr/bin/promtool", prometheus = "/usr/bin/prometheus"

    @Test func theAlertRulesCheckAndEveryAlertFiresAndStaysQuietAsItsUnitTestsSay() async throws {
        let directory = Paths.repository + "/deploy/prometheus"
        let checked = try await TestProcess.run(Self.promtool, ["check", "rules", directory + "/alerts.yml"])
        #expect(checked.status == 0 && checked.standardOutput.contains("SUCCESS: 9 rules found"), "\(checked.standardOutput)\(checked.standardError)")
        let tested = try await TestProcess.run(Self.promtool, ["test", "rules", directory + "/alerts.test.yml"])
        #expect(tested.status == 0 && tested.standardOutput.contains("SUCCESS"), "\(tested.standardOutput)\(tested.standardError)")
        // Every alert has a test that fires it and one that does not.
        let rules = try String(contentsOfFile: directory + "/alerts.yml", encoding: .utf8).matches(of: /- alert: (\w+)/).map { String($0.1) }
        let cases = try String(contentsOfFile: directory + "/alerts.test.yml", encoding: .utf8).components(separatedBy: "- alertname: ").dropFirst()
            .map { block in (name: String(block.prefix { !$0.isNewline }), fires: block.contains("exp_labels")) }
        #expect(rules.count == 9)
        for rule in rules {
            #expect(cases.contains { $0.name == rule && $0.fires }, "\(rule) has a test where it fires")
            #expect(cases.contains { $0.name == rule && !$0.fires }, "\(rule) has a test where it does not")
        }
    }

    @Test func prometheusScrapingARunAnswersEveryDashboardPanel() async throws {
        // A limit on retained WAL, so the limit's series is there too.
        let cluster = try await PrivateCluster.start("prometheus", settings: ["max_slot_wal_keep_size=4GB"])
        let fixture = try await DemoSources.fixture("prometheus", sourceCluster: cluster) { fixture in
            let buckets = fixture.root + "/buckets"
            try? FileManager.default.createDirectory(atPath: buckets + "/qvp-docs", withIntermediateDirectories: true)
            try? "a scan\n".write(toFile: buckets + "/qvp-docs/scan.pdf", atomically: true, encoding: .utf8)
            fixture.extraTargetYAML = "sync:\n  interval: 2s\n"
            fixture.sources[0].extraYAML = "objects:\n  - from: \(buckets)/qvp-docs\n    to: \(buckets)/unipacc/qvp/\n"
        }
        let metricsPort = try TestClusters.freePort(), prometheusPort = try TestClusters.freePort()
        let directory = fixture.root + "/prometheus"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try """
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            rule_files: ['\(Paths.repository)/deploy/prometheus/alerts.yml']
            scrape_configs:
              - job_name: tributary
                static_configs: [{targets: ['127.0.0.1:\(metricsPort)']}]
            """.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        let server = TestProcess(Self.prometheus, ["--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                                                    "--web.listen-address=127.0.0.1:\(prometheusPort)", "--log.level=warn"])
        try server.start()
        defer { server.kill() }
        let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Paths.repository + "/deploy/grafana/tributary.json"))) as! [String: Any]
        let expressions = (dashboard["panels"] as! [[String: Any]]).flatMap { panel in
            (panel["targets"] as! [[String: Any]]).map { (panel["title"] as! String, $0["expr"] as! String) }
        }
        #expect((dashboard["templating"] as? [String: Any]).map { "\($0)".contains("label_values(tributary_lag_seconds, source)") } == true)
        try await fixture.withRun(["--metrics-port", String(metricsPort)]) { _ in
            try await fixture.waitUntilApplied(["qvp", "svp"], seconds: 120)
            let load = try await BackgroundLoad.start(fixture)
            defer { Task { try? await load.stop() } }
            func query(_ expression: String) async throws -> [Any] {
                let outcome = try await TestProcess.run("/usr/bin/curl", ["-s", "-m", "10", "-G", "http://127.0.0.1:\(prometheusPort)/api/v1/query",
                                                                           "--data-urlencode", "query=\(expression)"])
                let json = (try? JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8))) as? [String: Any]
                guard json?["status"] as? String == "success" else { throw TestFailure("\(expression): \(outcome.standardOutput)") }
                return ((json?["data"] as? [String: Any])?["result"] as? [Any]) ?? []
            }
            // Prometheus has scraped a while (the rates need two samples in their window).
            try await eventually("Prometheus scrapes run", seconds: 60) { try await !query(#"up{job="tributary"} == 1"#).isEmpty }
            var empty: [String] = []
            do {
                try await eventually("every dashboard panel answers with data", seconds: 90, poll: 1000) {
                    empty = []
                    for (title, expression) in expressions {
                        let concrete = expression.replacingOccurrences(of: "$source", with: ".*").replacingOccurrences(of: "$__rate_interval", with: "15s")
                        if try await query(concrete).isEmpty { empty.append("\(title): \(expression)") }
                    }
                    return empty.isEmpty
                }
            } catch {
                Issue.record("panels with no data: \(empty)")
            }
            let rules = try await TestProcess.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(prometheusPort)/api/v1/rules"]).standardOutput
            #expect(rules.components(separatedBy: #""health":"ok""#).count - 1 == 9, "the rules load and evaluate: \(rules.prefix(1500))")
            #expect(try await query("ALERTS{alertstate=\"firing\"}").isEmpty, "a healthy run fires no alert")
        }
        await cluster.destroy()
    }
}
