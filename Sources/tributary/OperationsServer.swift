import Foundation
import Synchronization
import Logging
import Metrics
import Prometheus
import TributaryCore
import TributaryServices
import TributaryStorage

/// The operations endpoints of `tributary run`, on one address and port (loopback by default):
/// `GET /metrics` in Prometheus text format (the stages' counters through swift-metrics and, read at
/// scrape time, each source's lag and backlog as gauges), `GET /healthz` (every part's loop is
/// coming round: 200, else 503 naming the stalled part) and `GET /readyz` (every part is doing its
/// job or held by an operator: 200, else 503 with the reasons). Blocking sockets on threads of their
/// own: each client gets its thread and a read and write timeout, so a client that connects and
/// says nothing holds only itself up; beyond `clientsMax` at once, a client is answered 503.
final class OperationsServer: @unchecked Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let reader: StatusReader
    private let sources: [SourceConfiguration]
    private let liveness: Liveness
    private let logger: Logger
    private let socketDescriptor: Int32
    private let clients = Atomic<Int>(0)
    static let clientsMax = 16
    static let timeoutSeconds = 5

    init(address: String, port: Int, reader: StatusReader, sources: [SourceConfiguration], liveness: Liveness, logger: Logger) throws {
        self.reader = reader
        self.sources = sources
        self.liveness = liveness
        self.logger = logger
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var inet = in_addr()
        guard inet_pton(AF_INET, address, &inet) == 1 else {
            throw OperatorError("--metrics-address \(address) is not an IPv4 address (127.0.0.1 for this host only, 0.0.0.0 for every interface)")
        }
        socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(socketDescriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = in_port_t(UInt16(port).bigEndian)
        socketAddress.sin_addr = inet
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(socketDescriptor, 64) == 0 else {
            let reason = String(cString: strerror(errno))
            close(socketDescriptor)
            throw OperatorError("cannot serve metrics on \(address):\(port): \(reason): choose another --metrics-port")
        }
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "operations"
        thread.start()
        logger.notice("operations endpoints served", metadata: ["url": "http://\(address):\(port)/metrics, /healthz, /readyz"])
    }

    private func acceptLoop() {
        while true {
            let client = accept(socketDescriptor, nil, nil)
            guard client >= 0 else { continue }
            var timeout = timeval(tv_sec: Self.timeoutSeconds, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard clients.add(1, ordering: .relaxed).newValue <= Self.clientsMax else {
                respond(client, status: "503 Service Unavailable", body: Array("busy: too many clients at once\n".utf8))
                clients.subtract(1, ordering: .relaxed)
                continue
            }
            let thread = Thread { [self] in
                handle(client)
                clients.subtract(1, ordering: .relaxed)
            }
            thread.start()
        }
    }

    /// Reads the request line (a client that sends nothing times out) and answers it.
    private func handle(_ client: Int32) {
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while request.count < 8192, !request.contains(UInt8(ascii: "\n")) {
            let count = read(client, &buffer, buffer.count)
            guard count > 0 else { break }
            request += buffer.prefix(count)
        }
        let line = String(decoding: request, as: UTF8.self).prefix { $0 != "\r" && $0 != "\n" }
        let path = line.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        guard line.hasPrefix("GET ") else {
            respond(client, status: "400 Bad Request", body: Array("GET /metrics, /healthz or /readyz\n".utf8))
            return
        }
        switch path {
        case "/metrics":
            respond(client, status: "200 OK", body: scrape(), contentType: "text/plain; version=0.0.4")
        case "/healthz":
            let stalled = liveness.stalled
            respond(client, status: stalled.isEmpty ? "200 OK" : "503 Service Unavailable",
                    body: Array(((stalled.isEmpty ? "ok" : "stalled: \(stalled.joined(separator: ", "))") + "\n"
                                 + liveness.description.joined(separator: "\n") + "\n").utf8))
        case "/readyz":
            let notReady = liveness.notReady
            respond(client, status: notReady.isEmpty ? "200 OK" : "503 Service Unavailable",
                    body: Array(((notReady.isEmpty ? "ready" : notReady.map { "\($0.part): \($0.reason)" }.joined(separator: "\n")) + "\n").utf8))
        default:
            respond(client, status: "404 Not Found", body: Array("try /metrics, /healthz or /readyz\n".utf8))
        }
    }

    private func respond(_ client: Int32, status: String, body: [UInt8], contentType: String = "text/plain; charset=utf-8") {
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        _ = (Array(head.utf8) + body).withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
        close(client)
    }

    /// Gauges from the status the target and the sources report now, then everything as text.
    private func scrape() -> [UInt8] {
        let done = DispatchSemaphore(value: 0)
        let box = StatusBox()
        let reader = reader, sources = sources
        Task {
            box.report = try? await reader.report(sources)
            done.signal()
        }
        done.wait()
        for status in box.report?.sources ?? [] {
            let labels = [("source", status.source)]
            func gauge(_ name: String, _ unit: String, _ help: String, _ value: Double?, extra: [(String, String)] = []) {
                guard let value else { return }
                let descriptor = MetricNameDescriptor(namespace: "tributary", metricName: name, unitName: unit, helpText: help)
                registry.makeGauge(descriptor: descriptor, labels: labels + extra).set(to: value)
            }
            gauge("source_lag", "bytes", "WAL the source holds for the slot", status.sourceLagBytes.map(Double.init))
            gauge("retained_wal", "bytes", "WAL the slot retains on the source", status.retainedWALBytes.map(Double.init))
            gauge("lag", "seconds", "now minus the commit time of the newest applied change", status.lagSeconds)
            gauge("staged", "batches", "batches in the staging store not yet applied", Double(status.stagedBatches))
            gauge("staged", "bytes", "bytes in the staging store not yet applied", Double(status.stagedBytes))
            gauge("store", "objects", "the source's objects in the staging store at the last collection", status.store.map { Double($0.objects) })
            gauge("store", "bytes", "the source's bytes in the staging store at the last collection", status.store.map { Double($0.bytes) })
            gauge("applied_changes", "per_second", "changes applied per second over the last minute", status.changesPerSecond)
            gauge("replicator", "active", "1 while a replicator consumes the slot", status.replicatorActive.map { $0 ? 1.0 : 0.0 })
            for state in SourceState.allCases.map(\.rawValue) + [SourceStatus.State.slotLost.rawValue] {
                gauge("source", "state", "1 for the state the source is in", status.state.rawValue == state ? 1.0 : 0.0,
                      extra: [("state", state)])
            }
        }
        for model in box.report?.models ?? [] {
            let labels = [("model", model.model)]
            func gauge(_ name: String, _ unit: String, _ help: String, _ value: Double?) {
                guard let value else { return }
                registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "tributary", metricName: name, unitName: unit, helpText: help),
                                   labels: labels).set(to: value)
            }
            gauge("bl_lag", "seconds", "how old the newest source change in the model is", model.lagSeconds)
            gauge("bl_rows_waiting", "rows", "input rows changed since the model's last run", Double(model.rowsWaiting))
            gauge("bl_failed", "", "1 while the model's last run failed", model.state == .failed ? 1 : 0)
        }
        if box.report == nil { logger.warning("metrics: could not read the status; lag gauges keep their last values") }
        return registry.emitToBuffer()
    }
}

private final class StatusBox: @unchecked Sendable {
    var report: StatusReport?
}
