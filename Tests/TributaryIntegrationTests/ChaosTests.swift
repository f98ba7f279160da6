import Foundation
import Synchronization
import Testing
import TributaryCore
import TributaryPostgres
@testable import TributaryServices
import TributaryTestSupport

/// The chaos suite: the demo workload on both sources while faults land at seeded random times —
/// SIGKILLs of `run`, `replicate` and `apply`, fast and immediate restarts of each source and of the
/// target, an OCI store answering 503/429, slowly or dropping connections, every connection through
/// a TCP proxy cut at once, the work directory full and then freed. After each fault the pipeline
/// must recover on its own (both sources' applied positions move again); at the end `drain`, and
/// every STG table equals its source (no row lost, none extra) and every BL table a full reload.
///
/// CI runs a short round (`TRIBUTARY_CHAOS_SECONDS`, default 75); `deploy/chaos.sh --minutes N`
/// runs a long one. `TRIBUTARY_CHAOS_SEED` replays a round's fault schedule (the timing of a real
/// system under faults is never replayed exactly).
@Suite(.clusterLoad) struct ChaosTests {
    @Test func faultsAtRandomLoseAndDuplicateNothing() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seconds = Double(environment["TRIBUTARY_CHAOS_SECONDS"] ?? "") ?? 75
        let seed = UInt64(environment["TRIBUTARY_CHAOS_SEED"] ?? "") ?? UInt64.random(in: 1...999_999)
        print("chaos: seed \(seed), \(Int(seconds)) s of faults (TRIBUTARY_CHAOS_SEED=\(seed) replays the schedule)")
        let world = try await ChaosWorld.start()
        do {
            try await round(world, seconds: seconds, seed: seed)
        } catch {
            print("chaos: stopped by \(error): \(world.pipeline.errorTails())")
            await world.stopAll()
            throw error
        }
        await world.stopAll()
    }

    func round(_ world: ChaosWorld, seconds: Double, seed: UInt64) async throws {
        let report = ChaosReport()
        let workload = world.startWorkload(seed: seed, report: report)
        world.pipeline.start(mode: .run)
        let supervision = world.pipeline.supervise(report: report)

        var generator = SeededGenerator(seed: seed)
        let deadline = ContinuousClock.now + .seconds(seconds)
        var recoveryFailures: [String] = []
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(Int.random(in: 1500...4000, using: &generator)))
            let fault = ChaosFault.allCases.randomElement(using: &generator)!
            let detail = try await world.inject(fault, generator: &generator, report: report)
            report.count(fault.rawValue)
            // Recovery counts from the fault's end: the applied positions then (the target may be
            // starting up again) must move on.
            let injected = ContinuousClock.now
            var before: [String: LSN] = [:]
            try await eventually("the target answers after \(fault.rawValue)", seconds: 60, poll: 200) {
                guard let positions = try? await world.appliedPositions() else { return false }
                before = positions
                return true
            }
            do {
                try await eventually("both sources applied past \(before) after \(fault.rawValue) \(detail)", seconds: 150, poll: 500) {
                    guard let now = try? await world.appliedPositions() else { return false }
                    return now.allSatisfy { source, lsn in lsn > (before[source] ?? .zero) }
                }
                report.recovered(after: ContinuousClock.now - injected)
                print("chaos: \(fault.rawValue) \(detail), recovered in \(Self.seconds(ContinuousClock.now - injected)) s")
            } catch {
                recoveryFailures.append("\(error)")
                print("chaos: NOT RECOVERED after \(fault.rawValue): \(world.pipeline.errorTails())")
                break
            }
        }

        // Switchover: faults stop, the workload stops, the pipeline drains and STG is compared.
        try await world.emulator.setFaults([:])
        workload.cancel()
        _ = await workload.value
        supervision.cancel()
        _ = await supervision.value
        await world.pipeline.stopAll(signal: SIGTERM)
        world.pipeline.start(mode: .run)
        let drained = try await world.fixture.tributary(["drain", "--timeout", "300", "--no-verify"])
        await world.pipeline.stopAll(signal: SIGTERM)

        let comparison = try await world.compare()
        let blDifferences = try await TransformCheck(runner: TransformRunner(configuration: try world.fixture.configuration(),
                                                                            endpoints: try world.fixture.endpoints(), logger: PipelineFixture.logger)).run()
        print("chaos: process logs in \(world.pipeline.logDirectory)")
        print(report.table(seed: seed, comparison: comparison, blMatches: blDifferences.filter(\.matches).count, blModels: blDifferences.count))

        #expect(recoveryFailures.isEmpty, "seed \(seed): \(recoveryFailures)")
        #expect(drained.status == 0, "seed \(seed): \(drained.standardOutput)\(drained.standardError)")
        #expect(comparison.lost == 0 && comparison.extra == 0 && comparison.differing == 0, "seed \(seed): \(comparison)")
        #expect(comparison.rows > 1000, "the comparison saw the data")
        #expect(report.counts["source-fast-restart-slow", default: 0] == 0, "seed \(seed): a fast shutdown of a source took over 10 s")
        #expect(report.counts["workload-commits", default: 0] > 50, "the workload committed under the faults")
        // Every fault here is one a daemon waits out: none may end a process (the service manager
        // restarting it would hide the defect, not excuse it).
        #expect(report.counts["unexpected-exits", default: 0] == 0, "seed \(seed): \(world.pipeline.errorTails())")
        for difference in blDifferences { #expect(difference.matches, "seed \(seed): \(difference)") }
        // The process logs are for a failed round; a clean one leaves nothing behind.
        let clean = recoveryFailures.isEmpty && drained.status == 0 && comparison.lost == 0 && comparison.extra == 0
            && comparison.differing == 0 && report.counts["unexpected-exits", default: 0] == 0 && blDifferences.allSatisfy(\.matches)
        if clean { try? FileManager.default.removeItem(atPath: world.pipeline.logDirectory) }
    }
}

extension ChaosTests {
    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
}

enum ChaosFault: String, CaseIterable {
    case killPipelineProcess = "kill-process"
    case sourceFastRestart = "source-fast-restart"
    case sourceImmediateRestart = "source-immediate-restart"
    case targetRestart = "target-restart"
    case storeFaults = "store-503-429-slow-drop"
    case connectionsCut = "connections-cut"
    case workDirectoryFull = "work-dir-full"
}

/// Counts by kind, shared by the fault loop, the workload and the process supervisor.
final class ChaosReport: Sendable {
    private let tally = Mutex<[String: Int]>([:])
    private let recoveries = Mutex<[Duration]>([])

    func recovered(after duration: Duration) { recoveries.withLock { $0.append(duration) } }

    func count(_ what: String, _ by: Int = 1) { tally.withLock { $0[what, default: 0] += by } }
    var counts: [String: Int] { tally.withLock { $0 } }

    func table(seed: UInt64, comparison: ChaosWorld.Comparison, blMatches: Int, blModels: Int) -> String {
        let counts = self.counts
        var lines = ["", "chaos report (seed \(seed))", String(repeating: "-", count: 44)]
        let faults = ChaosFault.allCases.map { ($0.rawValue, counts[$0.rawValue, default: 0]) }
        for (kind, count) in faults { lines.append("fault \(kind.padding(toLength: 30, withPad: " ", startingAt: 0)) \(count)") }
        let rows: [(String, Int)] = [
            ("faults injected", faults.map(\.1).reduce(0, +)),
            ("recoveries", recoveries.withLock { $0.count }),
            ("process exits not injected", counts["unexpected-exits", default: 0]),
            ("workload transactions committed", counts["workload-commits", default: 0]),
            ("workload transactions failed", counts["workload-failures", default: 0]),
            ("tables compared", comparison.tables),
            ("rows compared", comparison.rows),
            ("rows lost", comparison.lost),
            ("rows duplicated (extra in STG)", comparison.extra),
            ("rows differing", comparison.differing),
            ("BL models equal to a full reload", blMatches),
            ("BL models", blModels),
        ]
        for (what, value) in rows { lines.append("\(what.padding(toLength: 36, withPad: " ", startingAt: 0)) \(value)") }
        let times = recoveries.withLock { $0 }.sorted()
        if !times.isEmpty {
            lines.append("recovery seconds, median and max       \(ChaosTests.seconds(times[times.count / 2])) / \(ChaosTests.seconds(times.last!))")
        }
        return lines.joined(separator: "\n")
    }
}

/// The clusters, proxies, emulator and pipeline processes of one chaos round.
final class ChaosWorld: @unchecked Sendable {
    struct Comparison: CustomStringConvertible {
        var tables = 0, rows = 0, lost = 0, extra = 0, differing = 0
        var details: [String] = []
        var description: String { "\(rows) rows in \(tables) tables: \(lost) lost, \(extra) extra, \(differing) differing \(details)" }
    }

    let sources: [String: PrivateCluster]
    let target: PrivateCluster
    let proxies: [String: TCPProxy]
    let emulator: OCIEmulator
    let fixture: PipelineFixture
    let pipeline: ChaosPipeline
    /// The sources as the workload and the comparison reach them: directly, never through a proxy.
    let direct: [String: String]
    let workDirectory: String

    private init(sources: [String: PrivateCluster], target: PrivateCluster, proxies: [String: TCPProxy], emulator: OCIEmulator,
                 fixture: PipelineFixture, direct: [String: String]) {
        self.sources = sources
        self.target = target
        self.proxies = proxies
        self.emulator = emulator
        self.fixture = fixture
        self.direct = direct
        workDirectory = fixture.root + "/work"
        pipeline = ChaosPipeline(configurationDirectory: fixture.configurationDirectory, logDirectory: NSTemporaryDirectory() + "tributary-" + URL(fileURLWithPath: fixture.root).lastPathComponent)
    }

    static func start() async throws -> ChaosWorld {
        let clusters = try await TestClusters.shared()
        var sources: [String: PrivateCluster] = [:], proxies: [String: TCPProxy] = [:], direct: [String: String] = [:]
        var fixtureSources: [PipelineFixture.Source] = []
        for (name, tables) in [("qvp", DemoSources.qvpTables), ("svp", DemoSources.svpTables)] {
            let cluster = try await PrivateCluster.start("chaos-\(name)")
            let conninfo = try await cluster.makeDatabase(name)
            let proxy = try await TCPProxy.start(to: cluster.port)
            sources[name] = cluster
            proxies[name] = proxy
            direct[name] = conninfo
            try await DemoSources.psql(conninfo, file: "deploy/demo/\(name)-schema.sql")
            try await DemoSources.psql(conninfo, file: "deploy/demo/\(name)-data.sql", variables: ["scale": "1"])
            fixtureSources.append(.init(name: name, conninfo: proxy.route(conninfo), slot: "chaos_\(name)", tables: tables))
        }
        let target = try await PrivateCluster.start("chaos-target", logical: false)
        let targetConninfo = try await target.makeDatabase("target")
        let targetProxy = try await TCPProxy.start(to: target.port)
        proxies["target"] = targetProxy
        let emulator = try await OCIEmulator.start()

        let root = clusters.directory + "/chaos-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root + "/slots", withIntermediateDirectories: true)
        var fixture = PipelineFixture(clusters: clusters, root: root, target: targetConninfo, sources: fixtureSources)
        fixture.targetOverride = targetProxy.route(targetConninfo)
        fixture.staging = "oci://\(OCIEmulator.namespace)/\(OCIEmulator.bucket)/chaos"
        fixture.extraTargetYAML = emulator.targetYAML(attempts: 10, multipartThreshold: "256KiB", partSize: "128KiB")
            + "work_max: \(ChaosWorld.workMaximumMiB)MiB\n"
        fixture.snapshotYAML = "  jobs: 2\nbatch:\n  max_age: 300ms\n  heartbeat: 500ms\n"
        try fixture.writeConfiguration()
        try DemoSources.copyModels(to: fixture.configurationDirectory + "/bl")
        for source in ["qvp", "svp"] { _ = try await fixture.snapshot(source) }
        return ChaosWorld(sources: sources, target: target, proxies: proxies, emulator: emulator, fixture: fixture, direct: direct)
    }

    static let workMaximumMiB = 48

    func stopAll() async {
        await pipeline.stopAll(signal: SIGKILL)
        for cluster in Array(sources.values) + [target] { await cluster.destroy() }
    }

    /// The demo workload on both sources, through source restarts: a failed transaction is the
    /// source's own decision (rolled back), and the comparison is against what the source kept.
    func startWorkload(seed: UInt64, report: ChaosReport) -> Task<Void, Never> {
        Task { [direct] in
            var demo = DemoWorkload(seed: seed)
            var connections: (qvp: PostgresConnection, svp: PostgresConnection)?
            while !Task.isCancelled {
                do {
                    if connections == nil {
                        let qvp = try await PostgresConnection.connect(direct["qvp"]!, name: "qvp")
                        let svp = try await PostgresConnection.connect(direct["svp"]!, name: "svp")
                        try await demo.prepare(qvp: qvp, svp: svp)
                        connections = (qvp, svp)
                    }
                    try await demo.step(qvp: connections!.qvp, svp: connections!.svp)
                    report.count("workload-commits")
                    try? await Task.sleep(for: .milliseconds(15))
                } catch {
                    report.count("workload-failures")
                    if let open = connections {
                        await open.qvp.close()
                        await open.svp.close()
                    }
                    connections = nil
                    try? await Task.sleep(for: .milliseconds(300))
                }
            }
            if let open = connections {
                await open.qvp.close()
                await open.svp.close()
            }
        }
    }

    /// Each source's applied position in the target's control state (read directly, not through a proxy).
    func appliedPositions() async throws -> [String: LSN] {
        let connection = try await PostgresConnection.connect(fixture.target, name: "target")
        defer { Task { await connection.close() } }
        let rows = try await connection.query("SELECT source, applied_lsn::text FROM tributary.sources WHERE applied_lsn IS NOT NULL").rows
        var positions: [String: LSN] = [:]
        for row in rows { positions[row[0]!] = LSN(row[1]!) }
        guard positions.count == 2 else { throw TestFailure("not every source applied yet") }
        return positions
    }

    /// Injects `fault` and takes it away again; returns what it hit.
    func inject(_ fault: ChaosFault, generator: inout SeededGenerator, report: ChaosReport) async throws -> String {
        let source = ["qvp", "svp"].randomElement(using: &generator)!
        switch fault {
        case .killPipelineProcess:
            return pipeline.killOne(using: &generator)
        case .sourceFastRestart, .sourceImmediateRestart:
            let mode = fault == .sourceFastRestart ? "fast" : "immediate"
            let (stopped, elapsed) = await sources[source]!.shutdown(mode: mode, seconds: 10)
            if !stopped {
                report.count("\(fault.rawValue)-slow")
                _ = await sources[source]!.shutdown(mode: "immediate", seconds: 30)
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 200...2000, using: &generator)))
            try await sources[source]!.startAgain()
            return "of \(source) (down in \(String(format: "%.1f", elapsed)) s)"
        case .targetRestart:
            let mode = Bool.random(using: &generator) ? "fast" : "immediate"
            let (stopped, elapsed) = await target.shutdown(mode: mode, seconds: 30)
            if !stopped { _ = await target.shutdown(mode: "immediate", seconds: 30) }
            try await Task.sleep(for: .milliseconds(Int.random(in: 200...2000, using: &generator)))
            try await target.startAgain()
            return "\(mode) (down in \(String(format: "%.1f", elapsed)) s)"
        case .storeFaults:
            let window = Int.random(in: 2...6, using: &generator)
            try await emulator.setFaults(["error_rate": 0.3, "statuses": [503, 429], "slow_rate": 0.2, "delay_ms": 400,
                                          "drop_rate": 0.05, "seed": Int(generator.next() % 1000)])
            try await Task.sleep(for: .seconds(window))
            try await emulator.setFaults([:])
            return "for \(window) s"
        case .connectionsCut:
            let whose = ["qvp", "svp", "target"].randomElement(using: &generator)!
            proxies[whose]!.cut()
            return "to \(whose)"
        case .workDirectoryFull:
            // A file filling the work directory to its bound: the next spill or batch write fails
            // with the work directory's own error until it is gone.
            let path = workDirectory + "/chaos-filler"
            try? FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
            // A filler that cannot be written is a fault not injected; the round goes on.
            _ = FileManager.default.createFile(atPath: path, contents: Data(count: Self.workMaximumMiB << 20))
            let window = Int.random(in: 2...6, using: &generator)
            try await Task.sleep(for: .seconds(window))
            try FileManager.default.removeItem(atPath: path)
            return "for \(window) s"
        }
    }

    /// Every replicated table, source against STG by primary key: keys missing from STG (lost),
    /// live STG keys the source does not have (extra: duplicated or resurrected), and rows whose
    /// content differs (the checksum comparison of `verify`).
    func compare() async throws -> Comparison {
        var result = Comparison()
        let target = try await PostgresConnection.connect(fixture.target, name: "target")
        defer { Task { await target.close() } }
        for name in ["qvp", "svp"] {
            let source = try await PostgresConnection.connect(direct[name]!, name: name)
            defer { Task { await source.close() } }
            for comparison in try await fixture.verify(name) {
                result.tables += 1
                result.rows += comparison.sourceRows
                if comparison.sourceChecksum != comparison.stagingChecksum || comparison.sourceRows != comparison.stagingRows {
                    result.details.append("\(comparison.table): \(comparison.problem ?? "differs") \(comparison.differingRanges)")
                }
                let key = try await source.query("""
                    SELECT string_agg(quote_ident(a.attname) || '::text', ' || '','' || ' ORDER BY k.ord)
                    FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, ord), pg_attribute a
                    WHERE i.indrelid = $1::regclass AND i.indisprimary AND a.attrelid = i.indrelid AND a.attnum = k.attnum
                    """, [comparison.table]).scalar!
                let sourceKeys = try await source.query("SELECT \(key) FROM \(comparison.table)").rows.map { $0[0]! }
                let stagingKeys = try await target.query("SELECT \(key) FROM \(comparison.stagingTable) WHERE NOT _deleted").rows.map { $0[0]! }
                let sourceSet = Set(sourceKeys), stagingSet = Set(stagingKeys)
                let lost = sourceSet.subtracting(stagingSet).count
                let extra = stagingSet.subtracting(sourceSet).count + (stagingKeys.count - stagingSet.count)
                result.lost += lost
                result.extra += extra
                if lost == 0 && extra == 0 && comparison.sourceChecksum != comparison.stagingChecksum { result.differing += 1 }
            }
        }
        return result
    }
}

/// The pipeline's processes as a service manager runs them: restarted a second after they exit,
/// whether a fault killed them or they stopped on their own (counted: the report shows those).
final class ChaosPipeline: @unchecked Sendable {
    enum Mode { case run, split }

    private let configurationDirectory: String
    /// Every process's log, one file per name across its restarts, kept for a look after a round.
    let logDirectory: String
    private let state = Mutex<(mode: Mode, processes: [String: TestProcess], killed: Set<String>, tails: [String: String])>(
        (.run, [:], [], [:]))

    init(configurationDirectory: String, logDirectory: String) {
        self.configurationDirectory = configurationDirectory
        self.logDirectory = logDirectory
        try? FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
    }

    private func keep(_ outcome: TestProcess.Outcome, of name: String) {
        let path = logDirectory + "/\(name).log"
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let file = FileHandle(forWritingAtPath: path) else { return }
        file.seekToEndOfFile()
        file.write(Data((outcome.standardError + "--- exit \(outcome.status)\n").utf8))
        try? file.close()
    }

    private func arguments(_ name: String) -> [String] {
        switch name {
        case "run": return ["run", "--shutdown-timeout", "20"]
        case "apply": return ["apply"]
        default: return ["replicate", "--source", String(name.dropFirst("replicate-".count))]
        }
    }

    private func names(_ mode: Mode) -> [String] { mode == .run ? ["run"] : ["replicate-qvp", "replicate-svp", "apply"] }

    private func launch(_ name: String) -> TestProcess? {
        let process = TestProcess(Paths.tributary, arguments(name) + ["--config", configurationDirectory])
        return (try? process.start()) != nil ? process : nil
    }

    func start(mode: Mode) {
        state.withLock { state in
            state.mode = mode
            for name in names(mode) { state.processes[name] = launch(name) }
        }
    }

    /// SIGKILLs one process; killing `run` (or, half the time, everything of the split mode)
    /// switches modes, so both shapes of deployment meet the faults.
    func killOne(using generator: inout SeededGenerator) -> String {
        let switchModes = Bool.random(using: &generator)
        return state.withLock { state in
            let name = state.processes.keys.sorted().randomElement(using: &generator) ?? "run"
            if state.mode == .run || switchModes {
                for (each, process) in state.processes {
                    process.kill()
                    keep(process.waitBlocking(), of: each)
                    state.killed.insert(each)
                }
                state.processes = [:]
                state.mode = state.mode == .run ? .split : .run
                return "of \(name) (now \(state.mode == .run ? "run" : "replicate + apply"))"
            }
            state.processes[name]?.kill()
            state.killed.insert(name)
            return "of \(name)"
        }
    }

    /// Restarts what exited, a second later, until cancelled.
    func supervise(report: ChaosReport) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                state.withLock { state in
                    for name in names(state.mode) {
                        if let process = state.processes[name], !process.hasExited { continue }
                        if let process = state.processes[name] {
                            let outcome = process.waitBlocking()
                            keep(outcome, of: name)
                            if !state.killed.contains(name) {
                                report.count("unexpected-exits")
                                state.tails[name] = String(outcome.standardError.suffix(1500))
                                print("chaos: \(name) exited by itself (\(outcome.status)): \(outcome.standardError.suffix(600))")
                            }
                        }
                        state.killed.remove(name)
                        state.processes[name] = launch(name)
                    }
                }
            }
        }
    }

    func errorTails() -> String {
        state.withLock { state in
            state.processes.map { "\($0.key): \(String($0.value.errorSoFar().suffix(1500)))" }.joined(separator: "\n")
                + state.tails.map { "\($0.key) (exited): \($0.value)" }.joined(separator: "\n")
        }
    }

    func stopAll(signal: Int32) async {
        let processes = state.withLock { state in
            defer { state.processes = [:] }
            return state.processes
        }
        for (name, process) in processes {
            process.kill(signal: signal)
            keep(await process.wait(), of: name)
        }
    }
}
