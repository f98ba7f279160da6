import ArgumentParser
import Foundation
import TributaryCore
import TributaryPostgres
import TributaryServices

/// Sources named on the command line, or all of them with --all.
struct SourceSelection: ParsableArguments {
    @Argument(help: "Source names.") var names: [String] = []
    @Flag(help: "Every configured source.") var all = false

    func resolve(_ configuration: Configuration) throws -> [SourceConfiguration] {
        guard all != !names.isEmpty else { throw ValidationError("name the sources, or give --all") }
        return all ? configuration.sources : try configuration.sources(named: names)
    }
}

struct Pause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop consuming sources' slots; running replicators finish the batch in hand within a second.",
        discussion: "The slot keeps its position and the source retains WAL from there (tributary status shows it grow). resume continues, losing nothing.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var selection: SourceSelection
    @Flag(help: "Pause applying these sources to STG as well.") var apply = false

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let target = try await PostgresConnection.connect(configuration.target.connection, name: "target", applicationName: "tributary pause")
            try await ControlSchema.migrate(on: target)
            for source in try selection.resolve(configuration) {
                if try await SourceControl.state(of: source.name, on: target)?.state == .drained {
                    throw OperatorError("\(source.name) is drained: there is nothing to pause (tributary resume \(source.name) restarts it)")
                }
                let before = try await SourceControl.set(source, to: .paused, applyPaused: apply, on: target)
                print("\(source.name): \(before?.rawValue ?? "new") → paused" + (apply ? " (replication and apply)" : " (replication; apply continues)"))
            }
            await target.close()
        }
    }
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue paused (or drained) sources from where their slots stopped.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var selection: SourceSelection

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let target = try await PostgresConnection.connect(configuration.target.connection, name: "target", applicationName: "tributary resume")
            try await ControlSchema.migrate(on: target)
            for source in try selection.resolve(configuration) {
                let before = try await SourceControl.set(source, to: .running, on: target)
                print("\(source.name): \(before?.rawValue ?? "new") → running")
            }
            await target.close()
        }
    }
}
