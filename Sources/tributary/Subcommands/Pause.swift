import ArgumentParser
import Foundation
import TributaryCore
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

extension SourceOperations.Transition {
    var line: String { "\(source): \(from?.rawValue ?? "new") → \(to.rawValue)" }
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
            let operations = SourceOperations(endpoints: Endpoints(configuration, command: "pause"))
            for source in try selection.resolve(configuration) {
                let transition = try await operations.pause(source, apply: apply)
                print(transition.line + (apply ? " (replication and apply)" : " (replication; apply continues)"))
            }
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
            let operations = SourceOperations(endpoints: Endpoints(configuration, command: "resume"))
            for source in try selection.resolve(configuration) {
                print(try await operations.resume(source).line)
            }
        }
    }
}
