import TributaryCore
import TributaryStorage

/// Retention under `run`, beside the applier (what it applied is what becomes collectable): a
/// collection every `staging.gc_interval`. A failed collection is logged and tried again at the
/// next interval: retention never stops replication.
struct CollectorPart: Part {
    let kind = "gc"
    let source: String? = nil
    let endpoints: Endpoints
    let store: any StagingStore
    let settings: RetentionSettings
    let sources: [SourceConfiguration]

    mutating func step(_ context: PartContext) async throws -> PartStep {
        let started = ContinuousClock.now
        context.ready("a collection every \(Int(settings.interval.seconds)) s")
        let collector = StoreCollector(endpoints: endpoints, store: store, settings: settings, logger: context.logger, stop: context.stop)
        do {
            _ = try await context.working { try await collector.collect(sources, dryRun: false) }
        } catch {
            context.logger.warning("staging store collection failed, trying again in \(Int(settings.interval.seconds)) s: \(error)")
        }
        return .idle(until: started + settings.interval)
    }
}
