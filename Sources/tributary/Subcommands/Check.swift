import ArgumentParser
import Foundation
import TributaryCore
import TributaryServices
import TributaryStorage

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate the configuration, the sources, the target and the staging store before anything runs.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Check only this source (repeatable).")
    var sources: [String] = []

    @Flag(name: .customLong("ddl-trigger"),
          help: "Print the SQL that installs the optional DDL event trigger on a source (run it there as a superuser), and check nothing.")
    var printDDLTrigger = false

    func run() async throws {
        if printDDLTrigger {
            print(DDLAnnouncement.installSQL)
            return
        }
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            print("ok    config   \(configuration.sources.count) sources, target and staging read from \(global.configurationDirectory)")
            let store = Result { try global.openStagingStore(configuration.target, command: "check") }
            let results = await PreflightChecker(configuration: configuration, endpoints: Endpoints(configuration, command: "check"), store: store)
                .run(sources: try configuration.sources(named: sources))
            for result in results {
                print((result.passed ? "ok    " : "FAIL  ") + Format.pad(result.subject, 9) + result.message)
            }
            let failures = results.filter { !$0.passed }.count
            if failures > 0 {
                CommandRunner.printError("\(failures) check\(failures == 1 ? "" : "s") failed")
                throw ExitCode(1)
            }
        }
    }
}
