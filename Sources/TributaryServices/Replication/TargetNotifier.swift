import Logging
import TributaryCore
import TributaryPostgres

/// Tells the target that a batch is durable: NOTIFY wakes the applier at once, and the flushed
/// position is recorded for status. Best effort: if the target is away, the applier's listing poll
/// finds the batch anyway, so a failure here is a warning, never a stop.
public actor TargetNotifier {
    private let target: String
    private let logger: Logger
    private var control: ControlStore?

    public init(target: String, logger: Logger) {
        self.target = target
        self.logger = logger
    }

    public func batchWritten(_ manifest: BatchManifest) async {
        do {
            if control == nil {
                control = try await ControlStore.open(target, applicationName: "tributary replicate", migrate: true)
            }
            try await control!.recordFlushed(manifest.source, at: manifest.endLSN, commitTime: manifest.lastCommitTime)
            try await control!.announceBatch(of: manifest.source)
        } catch {
            logger.warning("could not notify the target (the applier will find the batch by polling): \(error)")
            await control?.close()
            control = nil
        }
    }
}
