import Foundation
import Logging
import Synchronization
import TributaryServices

/// Shows a `TransferProgress` while it runs: a redrawn table on a terminal, a log line every
/// ten seconds otherwise (systemd, CI, a pipe).
struct TerminalProgress {
    let logger: Logger

    /// Runs until cancelled.
    func show(_ progress: TransferProgress) async {
        let isTerminal = isatty(STDERR_FILENO) == 1
        var drawnLines = 0
        var lastLog = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(500))
            if isTerminal {
                let lines = render(progress)
                var text = drawnLines > 0 ? "\u{1B}[\(drawnLines)A" : ""
                for line in lines { text += "\u{1B}[2K" + line + "\n" }
                FileHandle.standardError.write(Data(text.utf8))
                drawnLines = lines.count
            } else if ContinuousClock.now - lastLog >= .seconds(10) {
                lastLog = .now
                logger.info("\(summary(progress))")
            }
            if progress.isDone { return }
        }
    }

    func render(_ progress: TransferProgress) -> [String] {
        let elapsed = max(0.001, (ContinuousClock.now - progress.startedAt).seconds)
        var lines = ["\(progress.title): \(summary(progress))"]
        for table in progress.tables {
            let rate = Double(table.bytes) / elapsed
            let state: String
            if table.isDone {
                state = "done"
            } else if table.estimatedRows > 0, table.rows > 0 {
                let perRow = elapsed / Double(table.rows)
                state = "ETA " + Format.duration(max(0, Double(table.estimatedRows - table.rows) * perRow))
            } else {
                state = "…"
            }
            lines.append("  " + Format.pad(table.name, 40) + Format.pad(Format.count(table.rows) + " rows", 18, right: true)
                         + Format.pad(Format.bytes(table.bytes), 12, right: true)
                         + Format.pad(Format.bytes(Int(rate)) + "/s", 14, right: true) + "  " + state)
        }
        return lines
    }

    func summary(_ progress: TransferProgress) -> String {
        let elapsed = max(0.001, (ContinuousClock.now - progress.startedAt).seconds)
        let done = progress.tables.filter(\.isDone).count
        return "\(done)/\(progress.tables.count) tables, \(Format.count(progress.rows)) rows, \(Format.bytes(progress.bytes)), "
            + "\(Format.bytes(Int(Double(progress.bytes) / elapsed)))/s, \(Format.duration(elapsed))"
    }
}

enum Format {
    static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func count(_ value: Int) -> String {
        let digits = Array(String(value))
        var result = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { result += "," }
            result.append(digit)
        }
        return result
    }

    static func duration(_ seconds: Double) -> String {
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        let whole = Int(seconds)
        if whole < 3600 { return "\(whole / 60)m\(String(format: "%02d", whole % 60))s" }
        return "\(whole / 3600)h\(String(format: "%02d", whole / 60 % 60))m"
    }

    /// `2026-12-06 09:14 UTC`: when something happened, to the minute.
    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        return formatter.string(from: date)
    }

    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        guard text.count < width else { return text }
        let padding = String(repeating: " ", count: width - text.count)
        return right ? padding + text : text + padding
    }
}

/// Starts a progress display when a job reports its counters, and stops it when the job ends.
final class ProgressDisplay: Sendable {
    private let logger: Logger
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(logger: Logger) { self.logger = logger }

    /// Shows `progress` from now on, in place of whatever was shown before.
    var start: @Sendable (TransferProgress) async -> Void {
        { [self] progress in
            let display = Task { [logger] in await TerminalProgress(logger: logger).show(progress) }
            task.withLock { $0?.cancel(); $0 = display }
        }
    }

    /// Stops showing progress (until the next `start`).
    func stop() { task.withLock { $0?.cancel(); $0 = nil } }

    func around<T>(_ body: () async throws -> T) async throws -> T {
        defer { stop() }
        return try await body()
    }
}
