/// A failure the operator can act on: what is wrong, where, and what to do, in one line
/// (`description`), with a code that says what kind of failure it is — what a supervisor waits
/// out, what the CLI's exit code is — and context for the logs (source, table, LSN, file).
///
/// The one error type above the adapters: the adapters keep theirs (`PostgresError`,
/// `StorageError`, `OCIError`), which the supervisor classifies as they are.
public struct TributaryError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure: extensible, compared by name.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        /// The process exit code a command that ends on it returns.
        public let exitCode: Int32

        public init(_ name: String, exitCode: Int32 = 1) {
            self.name = name
            self.exitCode = exitCode
        }

        public var description: String { name }

        /// A configuration file says something that cannot be (located by file, line and key).
        public static let configuration = Code("configuration", exitCode: 2)
        /// A command-line option that cannot be.
        public static let usage = Code("usage", exitCode: 2)
        /// The configuration names something the source or target does not have, or has
        /// otherwise (a table, a column, a key, a privilege, a setting).
        public static let requirement = Code("requirement")
        /// Another process consumes the replication slot.
        public static let slotInUse = Code("slot in use")
        /// The replication slot does not exist (no snapshot yet), or is unusable.
        public static let slotMissing = Code("slot missing")
        /// Another applier holds the target.
        public static let applierBusy = Code("applier busy")
        /// An operator's command does not fit the source's state (pausing a drained source).
        public static let state = Code("state")
        /// A source's schema changed in a way STG cannot follow on its own.
        public static let schemaChange = Code("schema change")
        /// Something read back (a batch, a manifest, a spill, a part) is not what was written.
        public static let corrupt = Code("corrupt")
        /// The stream broke the protocol (pgoutput, replication).
        public static let protocolViolation = Code("protocol violation")
        /// A newer tributary wrote this (the control schema, a manifest format).
        public static let version = Code("version")
        /// A BL model cannot be run as configured, or made rows it must not.
        public static let model = Code("model")
        /// A drain or wait ran out of time; nothing is lost, the same command goes on.
        public static let timedOut = Code("timed out")
        /// A part of a pipeline stopped for good.
        public static let stopped = Code("stopped")
        /// A signal stopped a long command at a safe point before it was done; what it finished
        /// is kept, and running it again takes it up (exit code 75, EX_TEMPFAIL: try again).
        public static let interrupted = Code("interrupted", exitCode: 75)
        /// Anything else.
        public static let general = Code("general")
    }

    public var code: Code
    public var message: String
    /// For log metadata (keys from `LogKey`); never a password or key.
    public var context: [String: String]

    public init(_ code: Code, _ message: String, context: [String: String] = [:]) {
        self.code = code
        self.message = message
        self.context = context
    }

    /// A configuration problem, located so the operator can fix it: file, line, key path, cause.
    public static func configuration(file: String, line: Int? = nil, keyPath: String = "", problem: String) -> TributaryError {
        let location = line.map { "\(file):\($0)" } ?? file
        var context = [LogKey.file: file]
        if let line { context[LogKey.line] = String(line) }
        if !keyPath.isEmpty { context[LogKey.key] = keyPath }
        return TributaryError(.configuration, keyPath.isEmpty ? "\(location): \(problem)" : "\(location): \(keyPath): \(problem)",
                              context: context)
    }

    /// A schema change that stops a source (or one of its parts) until its operator makes `fix`;
    /// `status` shows both.
    public static func schemaStop(_ change: String, fix: String, source: String) -> TributaryError {
        TributaryError(.schemaChange, "\(change): \(fix)", context: [LogKey.source: source, LogKey.change: change, LogKey.fix: fix])
    }

    public var exitCode: Int32 { code.exitCode }

    public var description: String { message }
}

/// Whether `error` is a `TributaryError` of `code` (`case .slotInUse = error` reads as such).
public func ~= (code: TributaryError.Code, error: any Error) -> Bool {
    (error as? TributaryError)?.code == code
}
