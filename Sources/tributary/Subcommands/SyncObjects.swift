import ArgumentParser
import Foundation
import Logging
import TributaryCore
import Synchronization
import TributaryServices

struct SyncObjects: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync-objects",
        abstract: "One pass of the object sync: copy the sources' new and changed object files to the target bucket.",
        discussion: """
            For every mapping (objects: in a source's YAML), the source and target listings are merge-joined in name \
            order; new and changed objects are copied (server-side when one profile reaches both, else streamed range by \
            range), objects only the target has are deleted when the mapping allows it and nothing failed. A killed pass \
            resumes where it was. --dry-run prints what would be copied, replaced and deleted. Exit 0 when something was \
            done, 99 when there was nothing to do, 1 when an object or a mapping failed.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Only this source's mappings (repeatable; default: all).")
    var sources: [String] = []

    @Flag(help: "Print what a pass would copy, replace and delete; change nothing.")
    var dryRun = false

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let selected = try configuration.sources(named: sources)
            let logger = global.makeLogger("sync-objects")
            let service = ObjectSyncService(configuration: configuration, endpoints: Endpoints(configuration, command: "sync-objects"), logger: logger)
            guard !service.mappings(of: selected).isEmpty else {
                print("sync-objects: no objects: mappings in the sources' YAML")
                throw ExitCode(99)
            }
            let stop = service.stop
            let signals = SignalHandlers.install([SIGTERM, SIGINT]) { _ in stop.request() }
            defer { _ = signals }
            let display = SyncProgressDisplay(logger: logger)
            let reports = try await display.around { try await service.runOnce(selected, dryRun: dryRun, onProgress: display.start) }
            for report in reports { print(Self.lines(report, dryRun: dryRun).joined(separator: "\n")) }
            if reports.contains(where: { !$0.succeeded }) { throw ExitCode(1) }
            if !dryRun && !reports.contains(where: \.changedSomething) { throw ExitCode(99) }
        }
    }

    static func lines(_ report: ObjectSyncReport, dryRun: Bool) -> [String] {
        let head = "\(report.mapping.source) → \(report.mapping.target)"
        if let error = report.error { return ["\(head): FAILED: \(error)"] }
        if dryRun {
            var lines = ["\(head): \(Format.count(Int(report.listed))) names listed; would copy \(Format.count(Int(report.copied))) "
                         + "(\(Format.bytes(Int(report.toCopyBytes)))), replace \(Format.count(Int(report.replaced))) "
                         + "(\(Format.bytes(Int(report.toReplaceBytes)))), delete \(Format.count(Int(report.extra))) "
                         + "(\(Format.bytes(Int(report.extraBytes))))" + (report.mapping.deletes.enabled ? "" : " if deletes were on")]
            lines += report.toCopy.map { "  copy     \($0)" } + report.toReplace.map { "  replace  \($0)" } + report.toDelete.map { "  delete   \($0)" }
            return lines
        }
        var line = "\(head): \(Format.count(Int(report.listed))) names listed, \(Format.count(Int(report.copied))) copied, "
            + "\(Format.count(Int(report.replaced))) replaced (\(Format.bytes(Int(report.copiedBytes)))), \(Format.count(Int(report.failed))) failed, "
            + "\(Format.count(Int(report.extra))) only in the target, \(Format.count(Int(report.deleted))) deleted in \(Format.duration(report.seconds))"
        if report.resumed { line += report.resumedAfter.map { " (resumed a killed pass after \($0))" } ?? " (resumed a killed pass from the start)" }
        return [line] + (report.deletesHeld.map { ["  not deleted: \($0)"] } ?? []) + report.failures.map { "  failed: \($0)" }
    }
}

/// A progress line for a pass while it runs: redrawn on a terminal, logged every ten seconds otherwise.
final class SyncProgressDisplay: Sendable {
    private let logger: Logger
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(logger: Logger) { self.logger = logger }

    var start: @Sendable (ObjectSyncProgress) async -> Void {
        { [self] progress in
            let display = Task { [logger] in
                let terminal = isatty(STDERR_FILENO) == 1
                var lastLog = ContinuousClock.now
                while !Task.isCancelled && !progress.isDone {
                    try? await Task.sleep(for: .milliseconds(500))
                    let line = Self.line(progress)
                    if terminal {
                        FileHandle.standardError.write(Data("\u{1B}[2K\r\(line)".utf8))
                    } else if ContinuousClock.now - lastLog >= .seconds(10) {
                        lastLog = .now
                        logger.info("\(line)")
                    }
                }
                if terminal { FileHandle.standardError.write(Data("\u{1B}[2K\r".utf8)) }
            }
            task.withLock { $0?.cancel(); $0 = display }
        }
    }

    func around<T>(_ body: () async throws -> T) async throws -> T {
        defer { task.withLock { $0?.cancel() } }
        return try await body()
    }

    static func line(_ progress: ObjectSyncProgress) -> String {
        let now = progress.snapshot
        return "sync \(progress.mapping): \(Format.count(Int(now.listed))) listed, \(Format.count(Int(now.copied))) copied, "
            + "\(Format.bytes(Int(now.copiedBytes))) of \(Format.bytes(Int(now.plannedBytes))), \(Format.bytes(Int(now.bytesPerSecond)))/s"
            + (now.estimate.map { ", ETA " + Format.duration($0) } ?? "") + (now.failed > 0 ? ", \(now.failed) failed" : "")
    }
}
