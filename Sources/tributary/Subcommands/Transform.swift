import ArgumentParser
import Foundation
import TributaryServices

struct Transform: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the BL models (slots/bl/) once: each takes in its inputs' changes since its last run, in dependency order.",
        discussion: """
            A model whose inputs did not change does nothing. --full rebuilds the models beside their tables and swaps them in \
            (refused for a model with full_refresh: false). --dry-run runs in a transaction that is rolled back and prints the \
            SQL and the rows that would be inserted, updated and removed. A model another process is running is waited for. \
            A model that fails stops itself and the models reading it; the others run. Exit 0 when every model ran (or had \
            nothing to do), 1 when one failed.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("model"), help: "Run only this model (repeatable; default: all).")
    var models: [String] = []

    @Option(help: "Models at once, each on a connection of its own (default: bl.jobs, 2); models that read each other run in turn.")
    var jobs: Int?

    @Flag(help: "Rebuild the models whole instead of taking in their inputs' changes.")
    var full = false

    @Flag(help: "Print the SQL and the rows that would change; change nothing.")
    var dryRun = false

    @Flag(help: "Compare every BL table with a full reload of its model (built in a scratch schema, then dropped), and count the orphans of its references:; change nothing else.")
    var check = false

    func validate() throws {
        if let jobs, !(1...32).contains(jobs) { throw ValidationError("--jobs must be from 1 to 32") }
    }

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            guard !configuration.models.isEmpty else {
                print("transform: no models in \(global.configurationDirectory)/bl")
                return
            }
            let logger = global.makeLogger("transform")
            let endpoints = Endpoints(configuration, command: "transform")
            if check {
                try await ReferenceCheck(endpoints: endpoints).validate(configuration.models)
                let differences = try await TransformCheck(runner: TransformRunner(configuration: configuration, endpoints: endpoints, logger: logger)).run()
                for difference in differences {
                    print(Format.pad(difference.model, 20) + (difference.matches
                        ? " equals a full reload (\(Format.count(difference.reloadRows)) rows)"
                        : " DIFFERS from a full reload: \(difference.onlyInTable) rows only in the table, \(difference.onlyInReload) only in the reload"))
                }
                let references = try await ReferenceCheck(endpoints: endpoints).run(configuration.models)
                for reference in references { print(Verifier.Outcome.line(reference)) }
                if !differences.allSatisfy(\.matches) || !references.allSatisfy(\.passes) { throw ExitCode(1) }
                return
            }
            let outcomes = try await TransformRunner(configuration: configuration, endpoints: endpoints, logger: logger)
                .run(try configuration.models(named: models), full: full, dryRun: dryRun, jobs: jobs)
            for outcome in outcomes {
                if dryRun { for statement in outcome.statements { print(statement + ";") } }
                print(Self.line(outcome, dryRun: dryRun))
            }
            if outcomes.contains(where: \.isFailure) { throw ExitCode(1) }
        }
    }

    static func line(_ outcome: ModelOutcome, dryRun: Bool) -> String {
        let name = Format.pad(outcome.model, 20)
        switch outcome.result {
        case .ran(let kind, let counts):
            let verb = dryRun ? "would insert" : "inserted"
            return "\(name) \(kind == .full ? "full reload" : "incremental"): \(verb) \(Format.count(counts.inserted)), "
                + "updated \(Format.count(counts.updated)), removed \(Format.count(counts.removed))"
                + (kind == .incremental ? " (\(Format.count(counts.affectedKeys)) keys looked at)" : "")
                + " in \(Format.duration(outcome.seconds))"
        case .nothingToDo: return "\(name) nothing to do: no input changed since its last run"
        case .waiting(let table): return "\(name) waiting: \(table) does not exist yet (snapshot its source first)"
        case .busy: return "\(name) skipped: another process is running it"
        case .skipped(let reason): return "\(name) skipped: \(reason)"
        case .failed(let error): return "\(name) FAILED: \(error)"
        }
    }
}
