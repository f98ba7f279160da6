import ArgumentParser
import Foundation
import TributaryCore
import TributaryServices
import TributaryStorage

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show each source's state and lag: WAL the source holds, batches staged, what is applied and how late.",
        discussion: "Reads state only, so it works whether or not anything is running. --json prints a stable shape for monitoring.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Only this source (repeatable).")
    var sources: [String] = []

    @Flag(help: "Print JSON (documented in the README) instead of text.")
    var json = false

    @Option(help: "Redraw at this interval (seconds, or 500ms, 1m) until interrupted.")
    var watch: Duration?

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let reader = StatusReader(endpoints: Endpoints(configuration, command: "status"),
                                      store: try global.openStagingStore(configuration.target, command: "status"), models: configuration.models)
            let selected = try configuration.sources(named: sources)
            repeat {
                let report = try await reader.report(selected)
                if let watch, !json {
                    print("\u{1B}[2J\u{1B}[H", terminator: "")
                    print("tributary status, every \(watch.seconds) s (Ctrl-C to stop)\n")
                }
                if json {
                    print(String(decoding: try ReportCoding.encode(report), as: UTF8.self))
                } else {
                    for status in report.sources { print(Self.line(status)) }
                    for model in report.models ?? [] { print(Self.line(model)) }
                    for mapping in report.objects ?? [] { print(Self.line(mapping)) }
                }
                if let watch { try await Task.sleep(for: watch) }
            } while watch != nil
        }
    }

    static func line(_ status: SourceStatus) -> String {
        var parts = [Format.pad(status.source, 6), Format.pad(status.state.rawValue, 16)]
        parts.append("replicator " + (status.replicatorActive.map { $0 ? "active" : (status.state.replicatorExpected ? "DOWN" : "stopped") } ?? "?"))
        parts.append("source \(status.sourceLSN?.description ?? "?")")
        parts.append("confirmed \(status.confirmedLSN?.description ?? "-")")
        parts.append("held \(status.sourceLagBytes.map(Format.bytes) ?? "-")")
        parts.append("retained \(status.retainedWALBytes.map(Format.bytes) ?? "-")")
        parts.append("staged \(status.stagedBatches) batches (\(Format.bytes(status.stagedBytes)))")
        if status.pendingTableSnapshots > 0 { parts.append("\(status.pendingTableSnapshots) table snapshots to merge") }
        if let store = status.store {
            parts.append("store \(Format.count(store.objects)) objects (\(Format.bytes(store.bytes)), gc removed \(Format.bytes(store.removedBytes)))")
        }
        parts.append("applied \(status.appliedLSN?.description ?? "-")")
        parts.append("lag \(status.lagSeconds.map { String(format: "%.1f s", $0) } ?? "-")")
        parts.append(String(format: "%.0f changes/s", status.changesPerSecond))
        if let drain = status.drainLSN { parts.append("drain end \(drain)") }
        let changes = (status.schemaChanges ?? []).map { change in
            "\n        schema change \(Format.timestamp(change.at)) at \(change.lsn): \(change.table): \(change.change)"
        }
        return parts.joined(separator: "  ") + status.warnings.map { "\n        warning: " + $0 }.joined() + changes.joined()
    }

    static func line(_ model: ModelStatus) -> String {
        var parts = ["model " + Format.pad(model.model, 18), Format.pad(model.state.rawValue, 10)]
        parts.append("lag \(model.lagSeconds.map { String(format: "%.1f s", $0) } ?? "-")")
        parts.append("\(Format.count(model.rowsWaiting))\(model.rowsWaiting >= 1_000_000 ? "+" : "") input rows waiting")
        parts.append("last run \(model.lastRunAt.map(ManifestCoding.format) ?? "-")")
        if let orphans = model.orphans { parts.append(orphans == 0 ? "no orphans" : "\(Format.count(orphans)) ORPHANS (tributary verify names them)") }
        return parts.joined(separator: "  ") + (model.error.map { "\n        error: " + $0 + "\n        (fix the model; the next run catches up)" } ?? "")
    }

    static func line(_ mapping: ObjectSyncStatus) -> String {
        var parts = ["objects " + mapping.mapping, "→ " + mapping.target, "last pass " + mapping.state]
        if let finished = mapping.finishedAt { parts.append("ended " + ManifestCoding.format(finished)) }
        parts.append("\(Format.count(Int(mapping.copied))) copied (\(Format.bytes(Int(mapping.copiedBytes))))")
        parts.append("\(Format.count(Int(mapping.pending))) pending (\(Format.bytes(Int(mapping.pendingBytes))))")
        parts.append("\(Format.count(Int(mapping.failed))) failed")
        parts.append("\(Format.count(Int(mapping.extra))) only in the target")
        return parts.joined(separator: "  ") + (mapping.error.map { "\n        error: " + $0 } ?? "")
    }
}
