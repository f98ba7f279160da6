import Foundation
import Logging
import TributaryCore
import TributaryPostgres

/// Tells the target that a batch is durable: NOTIFY wakes the applier at once, and the flushed
/// position is recorded for status. Best effort: if the target is away, the applier's listing poll
/// finds the batch anyway, so a failure here is a warning, never a stop.
public actor TargetNotifier {
    private let target: TargetEndpoint
    private let purpose: String
    private let logger: Logger
    private var control: ControlStore?

    /// - Parameter purpose: what its session is for, in its application name (`replicate qvp`).
    public init(target: TargetEndpoint, purpose: String, logger: Logger) {
        self.target = target
        self.purpose = purpose
        self.logger = logger
    }

    /// Closes its session (the next call opens a new one).
    public func close() async {
        await control?.close()
        control = nil
    }

    /// An idle source's heartbeat is confirmed: the flushed position moves and its commit time keeps
    /// the lag clock honest, without any object written.
    public func idleConfirmed(_ source: String, at lsn: LSN, commitTime: Date) async {
        await record("could not record an idle source's heartbeat", level: .debug) { control in
            try await control.recordFlushed(source, at: lsn, commitTime: commitTime)
            // The applier moves the applied position over it (nothing to apply, but STG is current).
            try await control.announceBatch(of: source)
        }
    }

    /// Records `lsn` as the source's flushed position before the replicator confirms it to the
    /// source (a keepalive's position with nothing pending): what the slot-continuity check compares
    /// the slot with. False when the target did not take it; the replicator then confirms all the
    /// same (a source must never wait on the target to shut down). Awaited, not raced against a
    /// timer: a write left running would outlive the replicator, and the process, mid-call.
    public func acknowledging(_ source: String, at lsn: LSN) async -> Bool {
        await record("could not record a confirmed position", level: .debug) { try await $0.recordFlushed(source, at: lsn) }
    }

    public func batchWritten(_ manifest: BatchManifest) async {
        await record("could not notify the target (the applier will find the batch by polling)", level: .warning) { control in
            try await control.recordFlushed(manifest.source, at: manifest.endLSN, commitTime: manifest.lastCommitTime)
            try await control.announceBatch(of: manifest.source)
        }
    }

    /// Runs `write` on the notifier's target session, opened when there is none; a failure drops the
    /// session (the next call opens a new one) and is logged, never thrown.
    @discardableResult
    private func record(_ failure: String, level: Logger.Level, _ write: (ControlStore) async throws -> Void) async -> Bool {
        do {
            if control == nil {
                control = try await target.openControl(migrate: true, for: purpose)
            }
            try await write(control!)
            return true
        } catch {
            logger.log(level: level, "\(failure): \(error)")
            await control?.close()
            control = nil
            return false
        }
    }
}
