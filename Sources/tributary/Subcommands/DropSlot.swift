import ArgumentParser
import Foundation
import TributaryCore
import TributaryPostgres
import TributaryServices

struct DropSlot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drop-slot",
        abstract: "After cutover: drop drained sources' replication slots, so the sources stop retaining WAL for them.",
        discussion: "Refuses a source that is not drained (--force overrides). The slot's position is lost: only a new snapshot can restart replication.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var selection: SourceSelection

    @Flag(help: "Drop the publication too, when tributary created it (create_publication: true).")
    var publication = false

    @Flag(help: "Drop even when the source is not drained.")
    var force = false

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let target = try await PostgresConnection.connect(configuration.target.connection, name: "target", applicationName: "tributary drop-slot")
            try await ControlSchema.migrate(on: target)
            for source in try selection.resolve(configuration) {
                let state = try await SourceControl.state(of: source.name, on: target)?.state
                guard force || state == .drained else {
                    throw OperatorError("\(source.name) is \(state?.rawValue ?? "not snapshotted"), not drained: run tributary drain first, or pass --force")
                }
                let connection = try await PostgresConnection.connect(source.connection, name: source.name, applicationName: "tributary drop-slot")
                let slot = try await connection.query("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", [source.slot])
                if slot.isEmpty {
                    print("\(source.name): slot \(source.slot) does not exist: nothing to drop")
                } else if let pid = slot.value(0, "active_pid") {
                    throw OperatorError("slot \(source.slot) on \(source.name) is in use by process \(pid): stop tributary run or replicate first")
                } else {
                    try await connection.query("SELECT pg_drop_replication_slot($1)", [source.slot])
                    print("\(source.name): dropped replication slot \(source.slot)")
                }
                if publication && source.createPublication {
                    try await connection.execute("DROP PUBLICATION IF EXISTS \(SQL.identifier(source.publication))")
                    print("\(source.name): dropped publication \(source.publication)")
                }
                await connection.close()
            }
            await target.close()
        }
    }
}
