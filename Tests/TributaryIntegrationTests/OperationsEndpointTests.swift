import Foundation
import Synchronization
import Testing
import TributaryCore
import TributaryPostgres

/// `tributary run` as a daemon: systemd's notify protocol, and the health endpoints beside /metrics.
@Suite struct OperationsEndpointTests {
    /// A datagram socket standing in for systemd's: collects what `tributary run` sends it.
    final class FakeNotifySocket: Sendable {
        let path: String
        private let descriptor: Int32
        private let received = Mutex<[String]>([])

        init() throws {
            path = NSTemporaryDirectory() + "tributary-notify-\(UUID().uuidString.prefix(8))"
            descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { bytes in
                for (index, byte) in path.utf8.enumerated() { bytes[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else { throw TestFailure("cannot bind \(path): \(String(cString: strerror(errno)))") }
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let thread = Thread { [self] in
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = recv(descriptor, &buffer, buffer.count, 0)
                    if count > 0 {
                        let message = String(decoding: buffer.prefix(count), as: UTF8.self)
                        received.withLock { $0.append(message) }
                    }
                }
            }
            thread.start()
        }

        var messages: [String] { received.withLock { $0 } }

        /// The socket's name goes; the descriptor stays open for the reading thread, which outlives the test.
        func removeName() { unlink(path) }
    }

    func eventually(_ what: String, seconds: Double = 60, _ condition: () async throws -> Bool) async throws {
        try await TributaryIntegrationTests.eventually(what, seconds: seconds, poll: 100, condition)
    }

    @Test func systemdHearsReadyThenWatchdogPingsThenStopping() async throws {
        let fixture = try await PipelineFixture.twoSources("notify")
        let notify = try FakeNotifySocket()
        defer { notify.removeName() }
        try fixture.writeConfiguration()
        let run = TestProcess(Paths.tributary, ["run", "--config", fixture.configurationDirectory, "--shutdown-timeout", "20"],
                              environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"])
        try run.start()
        do {
            try await eventually("READY=1 and two watchdog pings") {
                let messages = notify.messages
                guard let ready = messages.firstIndex(where: { $0.contains("READY=1") }) else { return false }
                return messages[ready...].filter { $0 == "WATCHDOG=1" }.count >= 2
            }
        } catch {
            run.kill()
            throw TestFailure("\(error); heard \(notify.messages); run said \((await run.wait()).standardError.suffix(1500))")
        }
        run.kill(signal: SIGTERM)
        let outcome = await run.wait()
        #expect(outcome.status == 0, "\(outcome.standardError.suffix(1500))")
        let messages = notify.messages
        let ready = messages.firstIndex { $0.contains("READY=1") }, watchdog = messages.firstIndex { $0 == "WATCHDOG=1" }
        let stopping = messages.firstIndex { $0.contains("STOPPING=1") }
        #expect(ready != nil && watchdog != nil && stopping != nil, "\(messages)")
        if let ready, let watchdog, let stopping { #expect(ready < watchdog && watchdog < stopping, "order: \(messages)") }
        #expect(!messages.contains { $0.contains("WATCHDOG=1") && messages.firstIndex(of: $0)! < (ready ?? 0) }, "no ping before READY")
    }

    func get(_ port: Int, _ path: String) async throws -> (status: Int, body: String) {
        let outcome = try await TestProcess.run("/usr/bin/curl", ["-s", "-m", "10", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"])
        let lines = outcome.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    @Test func healthAndReadinessWhileRunningPausedAndWithAReplicatorDown() async throws {
        let cluster = try await PrivateCluster.start("health")
        var fixture = try await PipelineFixture.make("health", sources: [("qvp", ["public.events"])], sourceCluster: cluster)
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 200ms\n  heartbeat: 300ms\n"
        try await fixture.connectSource("qvp").execute("CREATE TABLE events (id bigserial PRIMARY KEY, note text)")
        _ = try await fixture.snapshot("qvp")
        try fixture.writeConfiguration()
        let port = try TestClusters.freePort()
        let run = TestProcess(Paths.tributary, ["run", "--config", fixture.configurationDirectory, "--metrics-port", String(port)])
        try run.start()
        do {
            try await eventually("ready") { try await get(port, "/readyz").status == 200 }
            #expect(try await get(port, "/healthz").status == 200)
            #expect(try await get(port, "/metrics").body.contains("tributary_staged_batches"))
            #expect(try await get(port, "/nothing").status == 404)

            // A client that connects and says nothing holds up no one else.
            let idle = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(idle, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            let started = ContinuousClock.now
            #expect(try await get(port, "/healthz").status == 200)
            // Blocked, it would answer only once the idle client is dropped (the server's idle
            // timeout, 5 s); 2 s was passed by a busy 2-core machine's CI (2.7 s).
            #expect(ContinuousClock.now - started < .seconds(4), "an idle client blocked the endpoint")
            close(idle)

            // Paused by an operator: still ready.
            #expect(try await fixture.tributary(["pause", "qvp"]).status == 0)
            try await eventually("paused and ready") { try await get(port, "/healthz").body.contains("paused by an operator") }
            #expect(try await get(port, "/readyz").status == 200)
            #expect(try await fixture.tributary(["resume", "qvp"]).status == 0)

            // The source down: the replicator is not ready (and says why); the process is healthy.
            _ = await cluster.shutdown(mode: "fast", seconds: 20)
            try await eventually("not ready while the source is down") {
                let ready = try await get(port, "/readyz")
                return ready.status == 503 && ready.body.contains("replicate qvp: interrupted")
            }
            #expect(try await get(port, "/healthz").status == 200)
            try await cluster.startAgain()
            try await eventually("ready again once the source is back") { try await get(port, "/readyz").status == 200 }
        } catch {
            run.kill()
            throw TestFailure("\(error); run said \((await run.wait()).standardError.suffix(1500))")
        }
        run.kill(signal: SIGTERM)
        let outcome = await run.wait()
        #expect(outcome.standardError.contains("http://127.0.0.1:\(port)/metrics"), "loopback by default")
    }
}
