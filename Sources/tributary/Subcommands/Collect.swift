import ArgumentParser
import Foundation
import TributaryCore
import TributaryServices

struct Collect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove what the staging store no longer needs: applied batches past staging.retention, orphaned batch files, superseded snapshots.",
        discussion: """
            Never removes a batch its source has not applied, nor the current snapshot. tributary run does the same \
            every staging.gc_interval (default 10m); staging.retention defaults to 7d (0: keep nothing applied).
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("source"), help: "Collect only this source (repeatable; default: all).")
    var sources: [String] = []

    @Flag(help: "Print what would be removed, remove nothing.")
    var dryRun = false

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let store = try global.openStagingStore(configuration.target, command: "gc")
            let collector = StoreCollector(endpoints: Endpoints(configuration, command: "gc"), store: store, settings: configuration.target.retention,
                                           logger: global.makeLogger("gc"))
            for report in try await collector.collect(try configuration.sources(named: sources), dryRun: dryRun) {
                print("gc " + Self.summary(report))
            }
        }
    }

    static func summary(_ report: StoreCollector.Report) -> String {
        guard let plan = report.plan else { return "\(report.source): no control state yet (run tributary snapshot first): nothing collected" }
        let reasons = RetentionPlanner.Reason.allCases.compactMap { reason -> String? in
            let count = plan.count(reason)
            return count == 0 ? nil : "\(Format.count(count)) \(reason.rawValue)"
        }
        return "\(report.source): \(report.dryRun ? "would remove" : "removed") \(Format.count(plan.removedObjects)) objects "
            + "(\(Format.bytes(plan.removedBytes)))" + (reasons.isEmpty ? "" : ": " + reasons.joined(separator: ", "))
            + "; kept \(Format.count(plan.keptObjects)) objects (\(Format.bytes(plan.keptBytes)))"
    }
}
