import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import TributaryCore
import TributaryServices

/// The operations endpoints of `tributary run`, on one address and port (loopback by default),
/// served by Hummingbird as a service of the run's `ServiceGroup`: `GET /` the status page and
/// `GET /status.json` what it polls (`StatusPage`), `GET /metrics` in Prometheus
/// text format (the stages' counters through swift-metrics and, from the shared status reading,
/// each source's lag and backlog as gauges), `GET /healthz` (every part's loop is coming round:
/// 200, else 503 naming the stalled part) and `GET /readyz` (every part is doing its job or held by
/// an operator: 200, else 503 with the reasons). A request opens no database connection and lists
/// no bucket: it reads the `StatusBoard`, which one part keeps fresh. A client that says nothing
/// is dropped after `idleTimeout`; beyond `clientsMax` at once, new clients wait.
struct OperationsServer: Service {
    static let clientsMax = 16
    static let idleTimeout: TimeAmount = .seconds(5)

    private let application: Application<RouterResponder<BasicRequestContext>>
    private let address: String
    private let port: Int

    init(address: String, port: Int, board: StatusBoard, liveness: Liveness, logger: Logger) throws {
        var inet = in_addr()
        guard inet_pton(AF_INET, address, &inet) == 1 else {
            throw TributaryError(.usage, "--metrics-address \(address) is not an IPv4 address (127.0.0.1 for this host only, 0.0.0.0 for every interface)")
        }
        self.address = address
        self.port = port
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let gauges = StatusGauges(registry: registry)
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            let report = await board.current()
            if let report { gauges.set(report) } else { logger.warning("metrics: no status read yet; lag gauges are left out") }
            return Self.text(registry.emitToBuffer(), contentType: "text/plain; version=0.0.4")
        }
        router.get("/") { _, _ -> Response in
            Self.text(Array(StatusPage.html.utf8), contentType: "text/html; charset=utf-8",
                      headers: [.contentSecurityPolicy: StatusPage.contentSecurityPolicy, .init("X-Frame-Options")!: "DENY",
                                .init("Referrer-Policy")!: "no-referrer"])
        }
        router.get("/status.json") { _, _ -> Response in
            let page = StatusPageData(status: await board.current(), history: board.history().samples)
            return Self.text(try ReportCoding.encode(page), contentType: "application/json")
        }
        router.get("/healthz") { _, _ -> Response in
            let stalled = liveness.stalled
            let body = (stalled.isEmpty ? "ok" : "stalled: \(stalled.joined(separator: ", "))") + "\n" + liveness.description.joined(separator: "\n") + "\n"
            return Self.text(Array(body.utf8), status: stalled.isEmpty ? .ok : .serviceUnavailable)
        }
        router.get("/readyz") { _, _ -> Response in
            let notReady = liveness.notReady
            let body = (notReady.isEmpty ? "ready" : notReady.map { "\($0.part): \($0.reason)" }.joined(separator: "\n")) + "\n"
            return Self.text(Array(body.utf8), status: notReady.isEmpty ? .ok : .serviceUnavailable)
        }
        var quiet = logger
        quiet.logLevel = .warning
        application = Application(
            router: router, server: .http1(configuration: .init(idleTimeout: Self.idleTimeout)),
            configuration: .init(address: .hostname(address, port: port), serverName: "tributary",
                                 availableConnectionsDelegate: MaximumAvailableConnections(Self.clientsMax, logger: quiet)),
            onServerRunning: { _ in
                logger.notice("operations endpoints served", metadata: [LogKey.url: "http://\(address):\(port)/metrics, /healthz, /readyz, / (the status page)"])
            },
            logger: quiet)
    }

    func run() async throws {
        do {
            try await application.run()
        } catch let error where !(error is CancellationError) {
            throw TributaryError(.usage, "cannot serve metrics on \(address):\(port): \(error): choose another --metrics-port")
        }
    }

    private static func text(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, contentType: String = "text/plain; charset=utf-8",
                             headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: contentType, .xContentTypeOptions: "nosniff", .cacheControl: "no-store"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// What the status page polls: the shared status reading and the last hour of samples.
private struct StatusPageData: Encodable {
    var status: StatusReport?
    var history: [String: [StatusHistory.Sample]]
}

/// The gauges read from a status reading, set on the registry before each scrape's text.
private struct StatusGauges: Sendable {
    let registry: PrometheusCollectorRegistry

    func set(_ report: StatusReport) {
        for status in report.sources {
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
            gauge("slot_safe_wal", "bytes", "WAL the slot may still retain before max_slot_wal_keep_size invalidates it", status.safeWALBytes.map(Double.init))
            gauge("store", "reachable", "1 when the staging store answered the last status reading", status.storeReachable.map { $0 ? 1.0 : 0.0 })
            gauge("schema_stops", "", "parts of the source stopped on a schema change until its fix", Double(status.schemaStops?.count ?? 0))
            for state in SourceState.allCases.map(\.rawValue) + [SourceStatus.State.slotLost.rawValue] {
                gauge("source", "state", "1 for the state the source is in", status.state.rawValue == state ? 1.0 : 0.0,
                      extra: [("state", state)])
            }
        }
        for model in report.models ?? [] {
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
        for mapping in report.objects ?? [] {
            let labels = [("mapping", mapping.mapping)]
            func gauge(_ name: String, _ unit: String, _ help: String, _ value: Double) {
                registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "tributary", metricName: name, unitName: unit, helpText: help),
                                   labels: labels).set(to: value)
            }
            gauge("object_pending", "objects", "objects the mapping's last pass planned and has not copied", Double(mapping.pending))
            gauge("object_pending", "bytes", "bytes the mapping's last pass planned and has not copied", Double(mapping.pendingBytes))
            gauge("object_copied", "objects", "objects the mapping's last pass copied", Double(mapping.copied))
            gauge("object_failed", "objects", "objects the mapping's last pass failed to copy", Double(mapping.failed))
            gauge("object_pass_failed", "", "1 while the mapping's last pass failed", mapping.state == "failed" ? 1 : 0)
        }
        if let verify = report.lastVerify {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "tributary", metricName: "last_verify_matches", unitName: "",
                                                                helpText: "1 when the last verify found every table, check and file equal"))
                .set(to: verify.matches ? 1 : 0)
        }
    }
}
