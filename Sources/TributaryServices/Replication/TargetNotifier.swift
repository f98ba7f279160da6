import Logging
import TributaryCore
import TributaryPostgres

/// Tells the target that a batch is durable: NOTIFY wakes the applier at once, and the flushed
/// position is recorded for status. Best effort: if the target is away, the applier's listing poll
/// finds the batch anyway, so a failure here is a warning, never a stop.
public actor TargetNotifier {
    private let target: String
    private let logger: Logger
    private var connection: PostgresConnection?

    public init(target: String, logger: Logger) {
        self.target = target
        self.logger = logger
    }

    public func batchWritten(_ manifest: BatchManifest) async {
        do {
            if connection == nil {
                let opened = try await PostgresConnection.connect(target, name: "target", applicationName: "tributary replicate")
                try await ControlSchema.migrate(on: opened)
                connection = opened
            }
            try await connection!.query("""
                UPDATE tributary.sources SET flushed_lsn = greatest(flushed_lsn, $2::pg_lsn),
                    flushed_commit_time = greatest(flushed_commit_time, $3::timestamptz), updated_at = now()
                WHERE source = $1
                """, [manifest.source, manifest.endLSN.description, ManifestCoding.format(manifest.lastCommitTime)])
            try await connection!.query("SELECT pg_notify($1, $2)", [ChangeApplier.channel, manifest.source])
        } catch {
            logger.warning("could not notify the target (the applier will find the batch by polling): \(error)")
            await connection?.close()
            connection = nil
        }
    }
}
