import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Runs one source's replicator as the control state says: running, paused (the slot is left
/// alone and keeps its position), draining (up to the drain LSN, then idle) or drained. A lost
/// connection is retried with backoff; anything else is permanent and ends `run` with its reason.
public struct ReplicationSupervisor: Sendable {
    public let source: SourceConfiguration
    public let settings: Replicator.Settings
    public let store: any StagingStore
    public let target: String
    public let workDirectory: String
    public let logger: Logger
    public let stop: StopSignal
    /// How often the control state is read while the replicator runs or idles.
    public var pollSeconds = 0.5
    /// How often the source's catalog is compared with the configuration and STG (a dropped table
    /// sends nothing the stream could notice); the first look is at start.
    public var driftCheckSeconds = 300.0
    /// At start-up a busy slot may be a previous replicator's walsender that is still exiting (a
    /// restart right after a stop): it is retried this long before it counts as a second replicator.
    public var startupGraceSeconds = 10.0

    public init(source: SourceConfiguration, settings: Replicator.Settings, store: any StagingStore, target: String,
                workDirectory: String, logger: Logger, stop: StopSignal) {
        self.source = source
        self.settings = settings
        self.store = store
        self.target = target
        self.workDirectory = workDirectory
        self.logger = logger.with(source: source.name)
        self.stop = stop
    }

    /// What the supervisor has seen of its replicator so far: it decides which failures are worth
    /// waiting out.
    struct History {
        let began = ContinuousClock.now
        /// A replicator run has ended normally (after a pause, or at a drain end).
        var started = false
        /// The source answered once: from then on a refused connection is the source restarting.
        var reached = false
    }

    /// Runs until stopped; returns what all its replicator runs wrote.
    @discardableResult
    public func run() async throws -> Replicator.Summary {
        var total = Replicator.Summary()
        var control = try await ControlStore.open(target, applicationName: "tributary run \(source.name)", migrate: true)
        let notifier = TargetNotifier(target: target, logger: logger)
        var backoff = Backoff(initialSeconds: 1, maximumSeconds: 30)
        // The target's troubles are not the source's: a target back again must not wait out the
        // source's backoff, nor the other way round.
        var targetBackoff = Backoff(initialSeconds: 1, maximumSeconds: 30)
        var history = History()
        var announced: SourceState?
        let drift = watchDrift()
        defer { drift.cancel() }
        while !stop.isRequested {
            guard let current = try await readState(&control, backoff: &targetBackoff) else { continue }
            if current.state != announced {
                logger.notice("replication \(current.state.rawValue)", metadata: current.drainLSN.map { [LogKey.lsn: .string($0.description)] } ?? [:])
                announced = current.state
            }
            guard current.wantsReplication else {
                settings.liveness.ready(Replicator.part(source.name), true, "\(current.state.rawValue) by an operator")
                settings.liveness.beat(Replicator.part(source.name))
                try await Task.sleep(for: .seconds(pollSeconds))
                continue
            }
            var partSettings = settings
            if current.state == .draining { partSettings.endLSN = current.drainLSN }
            // A slot someone else recreated (or consumed) is lost as surely as an invalidated one.
            if let lost = await lostSlot(replicatedBefore: current.appliedLSN != nil, recorded: current.flushedLSN) {
                try await waitForRecovery(lost)
                continue
            }
            let partStop = StopSignal()
            let watcher = watch(current, stopping: partStop)
            let began = ContinuousClock.now
            do {
                let summary = try await Replicator(source: source, settings: partSettings, store: store, workDirectory: workDirectory,
                                                   logger: logger, stop: partStop, notifier: notifier).run()
                watcher.cancel()
                history.started = true
                history.reached = true
                total.add(summary)
                try await control.recordFlushed(source.name, at: summary.durableLSN)
                backoff.reset()
            } catch {
                watcher.cancel()
                settings.liveness.ready(Replicator.part(source.name), false, "interrupted: \(error)")
                // A replicator that streamed for a while before this failure starts its waits afresh:
                // the trouble is new, not the one it recovered from.
                if ContinuousClock.now - began > .seconds(30) { backoff.reset() }
                if let lost = await lostSlot(replicatedBefore: current.appliedLSN != nil, recorded: nil) {
                    try await waitForRecovery(lost)
                    continue
                }
                try await recover(from: error, history: &history, backoff: &backoff)
            }
        }
        await control.close()
        return total
    }

    /// The source's control state, or nil after waiting out a lost target connection.
    private func readState(_ control: inout ControlStore, backoff: inout Backoff) async throws -> SourceControlState? {
        do {
            let state = try await control.state(of: source.name) ?? SourceControlState(state: .running)
            backoff.reset()
            return state
        } catch let error as PostgresError where error.isTransient {
            let delay = backoff.next()
            logger.warning("target connection lost, reconnecting in \(delay) s: \(error)")
            try await Task.sleep(for: .seconds(delay))
            if let fresh = try? await ControlStore.open(target, applicationName: "tributary run \(source.name)", migrate: false) {
                await control.close()
                control = fresh
            }
            return nil
        }
    }

    /// Why the slot can no longer serve this source (invalidated, dropped after the source was
    /// replicated, or confirmed past anything tributary `recorded` or stored: recreated); nil when
    /// it can, or when the source cannot be asked (the usual retries decide).
    private func lostSlot(replicatedBefore: Bool, recorded: LSN?) async -> String? {
        guard let connection = try? await PostgresConnection.connect(source.connection, name: source.name,
                                                                      applicationName: "tributary run \(source.name)") else { return nil }
        defer { Task { await connection.close() } }
        do {
            guard let slot = try await ReplicationSlot.find(source.slot, on: connection) else {
                return replicatedBefore ? "replication slot \(source.slot) was dropped on \(source.name)" : nil
            }
            if slot.isLost { return "replication slot \(source.slot) lost WAL it still needed (max_slot_wal_keep_size)" }
            guard replicatedBefore, let recorded else { return nil }
            return try await SlotContinuityCheck.problem(slot, source: source, recorded: { recorded }, store: store)
        } catch {
            return nil
        }
    }

    /// A lost slot stops this source only: the process and the other sources go on. Polls until the
    /// operator's new snapshot gives the source a usable slot again, then replication resumes.
    private func waitForRecovery(_ lost: String) async throws {
        let part = Replicator.part(source.name)
        logger.error("slot lost, replication of this source stopped: \(lost): \(ReplicationSlot.recovery(source: source.name))")
        PipelineMetrics.error(source: source.name, part: "replicate")
        settings.liveness.ready(part, false, "slot lost: \(lost)")
        while !stop.isRequested {
            // Alive and deliberately idle: not a hang for the watchdog.
            settings.liveness.beat(part)
            try await Task.sleep(for: .seconds(pollSeconds * 4))
            let current = try? await ControlStore.open(target, applicationName: "tributary run \(source.name)", migrate: false)
            let state = (try? await current?.state(of: source.name)) ?? nil
            await current?.close()
            if await lostSlot(replicatedBefore: state?.appliedLSN != nil, recorded: state?.flushedLSN) == nil {
                logger.notice("the slot is usable again (a new snapshot): replication resumes")
                return
            }
        }
    }

    /// Sleeps before the next attempt when `error` is worth waiting out; throws it otherwise.
    private func recover(from error: any Error, history: inout History, backoff: inout Backoff) async throws {
        if let error = error as? PostgresError, error.isTransient || (history.reached && error.kind == .connectionFailed) {
            if error.kind != .connectionFailed { history.reached = true }
            PipelineMetrics.error(source: source.name, part: "replicate")
            let delay = backoff.next()
            logger.warning("replication interrupted, resuming in \(delay) s: \(error)")
            try await Task.sleep(for: .seconds(delay))
        } else if TemporaryFailure.isStorage(error) {
            // The slot keeps every change until a batch is stored: waiting loses nothing.
            PipelineMetrics.error(source: source.name, part: "replicate")
            let delay = backoff.next()
            logger.error("cannot store batches, retrying in \(delay) s: \(error)")
            try await Task.sleep(for: .seconds(delay))
        } else if let error = error as? OperatorError, error.kind == .slotInUse,
                  history.started || ContinuousClock.now - history.began < .seconds(startupGraceSeconds) {
            // After a pause or during a drain, `tributary drain` may be finishing this source itself;
            // at start-up, the walsender of a replicator that just stopped may still be exiting.
            logger.info("slot busy, retrying in 1 s: \(error)")
            try await Task.sleep(for: .seconds(1))
        } else {
            // Two replicators for one slot at start-up, a missing slot, a type change: permanent.
            throw error
        }
    }

    /// Logs, once each, what changed on the source behind the stream's back: a configured table
    /// dropped, columns dropped (`SourceDrift`, which `status` shows too).
    private func watchDrift() -> Task<Void, Never> {
        Task { [source, target, logger, stop, driftCheckSeconds] in
            var said: Set<String> = []
            while !Task.isCancelled && !stop.isRequested {
                if let onSource = try? await PostgresConnection.connect(source.connection, name: source.name,
                                                                         applicationName: "tributary run \(source.name) drift") {
                    if let onTarget = try? await PostgresConnection.connect(target, name: "target", applicationName: "tributary run \(source.name) drift") {
                        for warning in (try? await SourceDrift.warnings(source, on: onSource, target: onTarget)) ?? [] where !said.contains(warning) {
                            said.insert(warning)
                            logger.warning("source drift: \(warning)")
                        }
                        await onTarget.close()
                    }
                    await onSource.close()
                }
                let next = ContinuousClock.now + .seconds(driftCheckSeconds)
                while ContinuousClock.now < next && !Task.isCancelled && !stop.isRequested {
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Stops the running replicator as soon as the control state moves away from `current`. Its own
    /// connection, opened again whenever it is lost: a pause must reach the replicator even while
    /// the target connection of the main loop is away.
    private func watch(_ current: SourceControlState, stopping partStop: StopSignal) -> Task<Void, Never> {
        Task { [stop, source, target, pollSeconds] in
            var watch: ControlStore?
            while !Task.isCancelled && !stop.isRequested {
                if watch == nil {
                    watch = try? await ControlStore.open(target, applicationName: "tributary run \(source.name) control", migrate: false)
                }
                if let control = watch {
                    do {
                        if let now = try await control.state(of: source.name), now.state != current.state || now.drainLSN != current.drainLSN {
                            break
                        }
                    } catch {
                        await control.close()
                        watch = nil
                    }
                }
                try? await Task.sleep(for: .seconds(pollSeconds))
            }
            await watch?.close()
            partStop.request()
        }
    }
}

extension SourceControlState {
    /// Running, or draining with the end not reached yet.
    var wantsReplication: Bool {
        switch state {
        case .running: return true
        case .draining:
            guard let end = drainLSN, let flushed = flushedLSN else { return true }
            return flushed < end
        case .paused, .drained: return false
        }
    }
}

extension Replicator.Summary {
    mutating func add(_ other: Replicator.Summary) {
        batches += other.batches
        transactions += other.transactions
        rows += other.rows
        durableLSN = max(durableLSN, other.durableLSN)
    }
}
