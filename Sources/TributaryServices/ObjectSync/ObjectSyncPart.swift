import Logging
import TributaryCore

/// The object sync under `run`: a pass over every mapping every `sync.interval`. A mapping that
/// fails is said in its report and in `status`, and tried again at the next pass.
struct ObjectSyncPart: Part {
    let kind = "sync-objects"
    let source: String? = nil
    let configuration: Configuration
    let endpoints: Endpoints
    let sources: [SourceConfiguration]

    mutating func step(_ context: PartContext) async throws -> PartStep {
        let started = ContinuousClock.now
        let interval = configuration.target.sync.interval
        context.ready("a pass every \(Int(interval.seconds)) s")
        let service = ObjectSyncService(configuration: configuration, endpoints: endpoints, logger: context.logger, stop: context.stop)
        for report in try await context.working({ try await service.runOnce(sources, dryRun: false) }) {
            context.logger.info("object sync pass", metadata: report.metadata)
        }
        return .idle(until: started + interval)
    }
}
