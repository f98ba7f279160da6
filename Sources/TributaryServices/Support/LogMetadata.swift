import Logging

/// The metadata keys Tributary logs with, in one place so dashboards can rely on them.
public enum LogKey {
    public static let source = "source"
    public static let slot = "slot"
    public static let lsn = "lsn"
    public static let batch = "batch"
    public static let table = "table"
    public static let object = "object"
    public static let rows = "rows"
    public static let bytes = "bytes"
    public static let seconds = "seconds"
}

extension Logger {
    /// A copy with `source` set: every line a per-source job logs carries it.
    public func with(source: String) -> Logger {
        var copy = self
        copy[metadataKey: LogKey.source] = .string(source)
        return copy
    }
}
