import Foundation
import Synchronization
import TributaryPostgres

/// Two throwaway PostgreSQL 15 clusters for the whole test process: a source (wal_level=logical)
/// and a target, on free loopback ports, started through deploy/tools/pg-cluster.sh (which runs the
/// server as the `postgres` OS user when tests run as root) and stopped when the process exits.
/// Tests share the clusters and isolate themselves with a database each.
final class TestClusters: Sendable {
    static let password = "tributary"
    let sourcePort: Int
    let targetPort: Int
    let directory: String

    private static let started = Task<TestClusters, any Error> { try TestClusters.start() }

    static func shared() async throws -> TestClusters { try await started.value }

    private init(sourcePort: Int, targetPort: Int, directory: String) {
        self.sourcePort = sourcePort
        self.targetPort = targetPort
        self.directory = directory
    }

    private static func start() throws -> TestClusters {
        let directory = NSTemporaryDirectory() + "tributary-tests-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o755)
        let sourcePort = try freePort(), targetPort = try freePort()
        // Tests never drop their slots (a test's slot may be idle between two of its runs, so no
        // other test can tell a finished one's): the suite leaves one slot per source per test, more
        // than PostgreSQL's usual 100 once it passed 280 tests.
        try clusterScript(["init", directory + "/source", String(sourcePort), "--logical", "--fast",
                           "--set", "max_replication_slots=1000"])
        try clusterScript(["init", directory + "/target", String(targetPort), "--fast"])
        stopDirectories.withLock { $0 = [directory + "/source", directory + "/target"] }
        atexit {
            let clusters = TestClusters.stopDirectories.withLock { $0 }
            for cluster in clusters {
                _ = try? TestClusters.clusterScript(["stop", cluster])
            }
            if let root = clusters.first.map({ ($0 as NSString).deletingLastPathComponent }) {
                try? FileManager.default.removeItem(atPath: root)
            }
        }
        return TestClusters(sourcePort: sourcePort, targetPort: targetPort, directory: directory)
    }

    /// Every cluster the process started, stopped at exit.
    static let stopDirectories = Mutex<[String]>([])

    @discardableResult
    static func clusterScript(_ arguments: [String]) throws -> TestProcess.Outcome {
        let process = TestProcess("/bin/bash", [Paths.repository + "/deploy/tools/pg-cluster.sh"] + arguments,
                                  environment: ["PGPASSWORD": password])
        try process.start()
        let outcome = process.waitBlocking()
        guard outcome.status == 0 else {
            throw TestFailure("pg-cluster.sh \(arguments.joined(separator: " ")) exited \(outcome.status): \(outcome.standardError)")
        }
        return outcome
    }

    /// A port nothing listens on now: bind to port 0 and ask the kernel.
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw TestFailure("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func conninfo(port: Int, database: String) -> String {
        "host=127.0.0.1 port=\(port) dbname=\(database) user=postgres password=\(Self.password)"
    }

    /// A fresh database on the source cluster (or the target cluster); dropped never: the clusters go.
    func makeDatabase(_ prefix: String, onSource: Bool) async throws -> String {
        let name = "\(prefix)_\(UInt32.random(in: 0...UInt32.max))"
        let port = onSource ? sourcePort : targetPort
        let admin = try await PostgresConnection.connect(conninfo(port: port, database: "postgres"), name: "admin")
        try await admin.execute("CREATE DATABASE \(name)")
        await admin.close()
        return conninfo(port: port, database: name)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum Paths {
    /// The package root, from this file's place in Tests/TributaryIntegrationTests/Support.
    static let repository: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The tributary executable SwiftPM built beside the test bundle.
    static let tributary: String = {
        let here = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        return here.appendingPathComponent("tributary").path
    }()
}

/// A cluster of one test's own, for what the shared clusters must not suffer: being shut down and
/// restarted under a running pipeline. Stopped and removed by `destroy()` (or at exit).
final class PrivateCluster: Sendable {
    let port: Int
    let directory: String

    private init(port: Int, directory: String) {
        self.port = port
        self.directory = directory
    }

    /// - Parameter settings: `NAME=VALUE` server settings beyond the defaults.
    static func start(_ label: String, logical: Bool = true, settings: [String] = []) async throws -> PrivateCluster {
        let shared = try await TestClusters.shared()
        let directory = shared.directory + "/cluster-\(label)-\(UUID().uuidString.prefix(8))"
        let port = try TestClusters.freePort()
        try TestClusters.clusterScript(["init", directory, String(port), "--fast"] + (logical ? ["--logical"] : [])
                                       + settings.flatMap { ["--set", $0] })
        TestClusters.stopDirectories.withLock { $0.append(directory) }
        return PrivateCluster(port: port, directory: directory)
    }

    func conninfo(database: String) -> String {
        "host=127.0.0.1 port=\(port) dbname=\(database) user=postgres password=\(TestClusters.password)"
    }

    func makeDatabase(_ prefix: String) async throws -> String {
        let name = "\(prefix)_\(UInt32.random(in: 0...UInt32.max))"
        let admin = try await PostgresConnection.connect(conninfo(database: "postgres"), name: "admin")
        try await admin.execute("CREATE DATABASE \(name)")
        await admin.close()
        return conninfo(database: name)
    }

    /// `pg_ctl stop -m <mode>` as a DBA runs it; true when the server was down within `seconds`.
    func shutdown(mode: String = "fast", seconds: Int) async -> (stopped: Bool, elapsed: Double) {
        let started = ContinuousClock.now
        let process = TestProcess("/bin/bash", [Paths.repository + "/deploy/tools/pg-cluster.sh", "shutdown", directory, mode, String(seconds)])
        guard (try? process.start()) != nil else { return (false, 0) }
        let outcome = await process.wait()
        let elapsed = ContinuousClock.now - started
        return (outcome.status == 0, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    func startAgain() async throws {
        let process = TestProcess("/bin/bash", [Paths.repository + "/deploy/tools/pg-cluster.sh", "start", directory])
        try process.start()
        let outcome = await process.wait()
        guard outcome.status == 0 else { throw TestFailure("restarting \(directory): \(outcome.standardError)") }
    }

    func destroy() async {
        _ = await shutdown(mode: "immediate", seconds: 30)
        try? FileManager.default.removeItem(atPath: directory)
    }
}
