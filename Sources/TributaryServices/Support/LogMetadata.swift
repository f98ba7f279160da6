import Logging
import TributaryCore

extension Logger {
    /// A copy with `source` set: every line a per-source job logs carries it.
    public func with(source: String) -> Logger {
        with(LogKey.source, source)
    }

    /// A copy with `key` set to `value`.
    public func with(_ key: String, _ value: String) -> Logger {
        var copy = self
        copy[metadataKey: key] = .string(value)
        return copy
    }
}

extension TributaryError {
    /// The error's context as log metadata.
    public var metadata: Logger.Metadata {
        context.mapValues { .string($0) }
    }
}
