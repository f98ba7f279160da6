import Foundation
import Logging
import Metrics
import Prometheus
import TributaryCore
import TributaryServices
import TributaryStorage

/// `GET /metrics` in Prometheus text format on a loopback-or-any port: the stages' counters (through
/// swift-metrics) and, read at scrape time, each source's lag and staging backlog as gauges.
/// Accepting blocks, so it has its own thread.
final class MetricsEndpoint: @unchecked Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let reader: StatusReader
    private let sources: [SourceConfiguration]
    private let logger: Logger
    private let socketDescriptor: Int32

    init(port: Int, reader: StatusReader, sources: [SourceConfiguration], logger: Logger) throws {
        self.reader = reader
        self.sources = sources
        self.logger = logger
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(socketDescriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: INADDR_ANY)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(socketDescriptor, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(socketDescriptor)
            throw OperatorError("cannot serve metrics on port \(port): \(reason): choose another --metrics-port")
        }
        let thread = Thread { [self] in serve() }
        thread.name = "metrics"
        thread.start()
        logger.notice("metrics served", metadata: ["url": "http://0.0.0.0:\(port)/metrics"])
    }

    private func serve() {
        while true {
            let client = accept(socketDescriptor, nil, nil)
            guard client >= 0 else { continue }
            var request = [UInt8](repeating: 0, count: 4096)
            let count = read(client, &request, request.count)
            let line = String(decoding: request.prefix(max(count, 0)), as: UTF8.self).prefix { $0 != "\r" && $0 != "\n" }
            let body: [UInt8]
            let status: String
            if line.hasPrefix("GET /metrics") {
                status = "200 OK"
                body = scrape()
            } else {
                status = "404 Not Found"
                body = Array("try /metrics\n".utf8)
            }
            let head = "HTTP/1.1 \(status)\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            _ = (Array(head.utf8) + body).withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
            close(client)
        }
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
            gauge("applied_changes", "per_second", "changes applied per second over the last minute", status.changesPerSecond)
            gauge("replicator", "active", "1 while a replicator consumes the slot", status.replicatorActive.map { $0 ? 1.0 : 0.0 })
            for state in SourceState.allCases {
                gauge("source", "state", "1 for the state the source is in", status.state.rawValue == state.rawValue ? 1.0 : 0.0,
                      extra: [("state", state.rawValue)])
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
