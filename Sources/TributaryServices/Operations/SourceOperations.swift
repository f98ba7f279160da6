import Logging
import TributaryCore
import TributaryPostgres

/// The operator's commands on sources that change the control state or the slots: pause, resume
/// and, after cutover, drop-slot. Each returns what it changed, for the CLI to say.
public struct SourceOperations: Sendable {
    public struct Transition: Sendable, Equatable {
        public var source: String
        /// nil when no stage had recorded the source before.
        public var from: SourceState?
        public var to: SourceState
    }

    public enum SlotOutcome: Sendable, Equatable {
        case dropped(slot: String)
        case absent(slot: String)
    }

    public struct DropOutcome: Sendable, Equatable {
        public var source: String
        public var slot: SlotOutcome
        public var droppedPublication: String?
    }

    public let endpoints: Endpoints

    public init(endpoints: Endpoints) { self.endpoints = endpoints }

    /// Stops consuming the source's slot (and, with `apply`, applying it), within a second.
    public func pause(_ source: SourceConfiguration, apply: Bool) async throws -> Transition {
        try await endpoints.target.withControl(migrate: true) { control in
            if try await control.state(of: source.name)?.state == .drained {
                throw TributaryError(.state, "\(source.name) is drained: there is nothing to pause (tributary resume \(source.name) restarts it)")
            }
            let before = try await control.set(source, to: .paused, applyPaused: apply)
            return Transition(source: source.name, from: before, to: .paused)
        }
    }

    /// Continues a paused (or drained) source from where its slot stopped.
    public func resume(_ source: SourceConfiguration) async throws -> Transition {
        try await endpoints.target.withControl(migrate: true) { control in
            Transition(source: source.name, from: try await control.set(source, to: .running), to: .running)
        }
    }

    /// Drops a drained source's slot (and the publication tributary created, when asked). Refuses a
    /// source that is not drained unless `force`, and a slot in use.
    public func dropSlot(_ source: SourceConfiguration, publication: Bool, force: Bool) async throws -> DropOutcome {
        try await endpoints.target.withControl(migrate: true) { control in
            let state = try await control.state(of: source.name)?.state
            guard force || state == .drained else {
                throw TributaryError(.state, "\(source.name) is \(state?.rawValue ?? "not snapshotted"), not drained: run tributary drain first, or pass --force")
            }
            return try await dropSlot(of: source, publication: publication)
        }
    }

    private func dropSlot(of source: SourceConfiguration, publication: Bool) async throws -> DropOutcome {
        try await endpoints.source(source).withConnection { connection in try await dropSlot(of: source, publication: publication, on: connection) }
    }

    private func dropSlot(of source: SourceConfiguration, publication: Bool, on connection: PostgresConnection) async throws -> DropOutcome {
        var outcome = DropOutcome(source: source.name, slot: .absent(slot: source.slot), droppedPublication: nil)
        if let slot = try await ReplicationSlot.find(source.slot, on: connection) {
            if let pid = slot.activePID {
                throw TributaryError(.slotInUse, "slot \(source.slot) on \(source.name) is in use by process \(pid): stop tributary run or replicate first")
            }
            try await ReplicationSlot.drop(source.slot, on: connection)
            outcome.slot = .dropped(slot: source.slot)
        }
        if publication && source.createPublication {
            try await connection.execute("DROP PUBLICATION IF EXISTS \(SQL.identifier(source.publication))")
            outcome.droppedPublication = source.publication
        }
        return outcome
    }
}
