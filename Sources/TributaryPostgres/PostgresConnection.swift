import CLibPQ
import Foundation
import TributaryCore

/// One libpq connection, owned by its own OS thread (see `ThreadExecutor`): every method runs there,
/// so blocking libpq calls never stall Swift's cooperative pool.
///
/// Work that streams (COPY through gzip to a file) runs as one isolated closure via `run`, so the
/// per-row loop stays on the connection's thread without a hop per row.
public actor PostgresConnection {
    public enum Mode: Sendable {
        case regular
        /// `replication=database`: replication commands plus simple-protocol SQL.
        case replication
    }

    /// A LISTEN notification.
    public struct Notification: Sendable, Equatable {
        public var channel: String
        public var payload: String
    }

    /// "qvp (127.0.0.1:54321/qvp as tributary)": names the server in every error, never the password.
    public nonisolated let endpoint: String
    private nonisolated let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private var handle: OpaquePointer?
    /// The last replication read found a message: the stream is flowing (`nextReplicationMessage`).
    private var replicationFlowing = false
    /// What this session asked of its server once and keeps for its life (how the server was
    /// built, say), by question.
    public var serverFacts: [String: Bool] = [:]

    private init(endpoint: String, executor: ThreadExecutor) {
        self.endpoint = endpoint
        self.executor = executor
    }

    // Isolated, so PQfinish runs on the thread that owns the handle.
    isolated deinit {
        if let handle { PQfinish(handle) }
        executor.shutdown()
    }

    /// Opens a connection on a thread of its own.
    /// - Parameters:
    ///   - name: what the server is to the operator (`qvp`, `target`): used in errors and the thread name.
    ///   - session: statements run once connected (the session's settings); the caller owns what they are.
    public static func connect(_ conninfo: String, name: String, mode: Mode = .regular,
                               applicationName: String, session: String) async throws -> PostgresConnection {
        let connection = PostgresConnection(
            endpoint: describe(conninfo, name: name), executor: ThreadExecutor(name: "pq \(name)"))
        try await connection.open(conninfo, mode: mode, applicationName: applicationName, session: session)
        return connection
    }

    private func open(_ conninfo: String, mode: Mode, applicationName: String, session: String) throws {
        // Later keywords win, so the defaults before `dbname` yield to the operator's conninfo and
        // the ones after it are forced: the staging files must be UTF-8.
        var parameters = [("connect_timeout", "10"), ("dbname", conninfo),
                          ("fallback_application_name", applicationName), ("client_encoding", "UTF8")]
        if mode == .replication { parameters.append(("replication", "database")) }
        let connection = withCStringArrays(parameters.map(\.0), parameters.map(\.1)) { keys, values in
            PQconnectdbParams(keys, values, 1)
        }
        guard let connection else {
            throw PostgresError(kind: .connectionFailed, endpoint: endpoint, message: "out of memory opening a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(kind: .connectionFailed, endpoint: endpoint, message: message)
        }
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        handle = connection
        if !session.isEmpty { try execute(session) }
    }

    /// Closes the connection; the owning thread ends after this.
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// Runs `body` on this connection's thread: for work that must not hop per step (COPY loops).
    public func run<T: Sendable>(_ body: @Sendable (isolated PostgresConnection) throws -> T) throws -> T {
        try body(self)
    }

    // MARK: Statements

    /// Runs one or more statements with the simple protocol, discarding rows.
    public func execute(_ sql: String) throws {
        let connection = try live()
        var result = PQexec(connection, sql)
        defer { PQclear(result) }
        try check(result, sql: sql, accepting: [PGRES_COMMAND_OK, PGRES_TUPLES_OK])
        // PQexec returns the last result only; any earlier error already aborted the string.
        while let next = PQgetResult(connection) {
            PQclear(result)
            result = next
        }
    }

    /// A parameterised query (extended protocol, text values). Not available on replication connections.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws -> QueryResult {
        let connection = try live()
        let result = withOptionalCStrings(parameters) { values in
            PQexecParams(connection, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        defer { PQclear(result) }
        try check(result, sql: sql, accepting: [PGRES_COMMAND_OK, PGRES_TUPLES_OK])
        return Self.read(result!)
    }

    /// A query with the simple protocol: the only kind a replication connection takes.
    @discardableResult
    public func simpleQuery(_ sql: String) throws -> QueryResult {
        let connection = try live()
        let result = PQexec(connection, sql)
        defer { PQclear(result) }
        try check(result, sql: sql, accepting: [PGRES_COMMAND_OK, PGRES_TUPLES_OK])
        return Self.read(result!)
    }

    /// BEGIN … COMMIT around `body`; ROLLBACK when it throws.
    public func transaction<T>(_ begin: String = "BEGIN", _ body: (isolated PostgresConnection) throws -> T) throws -> T {
        try execute(begin)
        do {
            let value = try body(self)
            try execute("COMMIT")
            return value
        } catch {
            if let handle, PQstatus(handle) == CONNECTION_OK { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// BEGIN … COMMIT around `body`, which may await other actors (the staging store) between
    /// its statements; ROLLBACK when it throws.
    public func transaction<T: Sendable>(awaiting body: (isolated PostgresConnection) async throws -> T) async throws -> T {
        try execute("BEGIN")
        do {
            let value = try await body(self)
            try execute("COMMIT")
            return value
        } catch {
            if let handle, PQstatus(handle) == CONNECTION_OK { try? execute("ROLLBACK") }
            throw error
        }
    }

    // MARK: COPY

    /// Runs a `COPY … TO STDOUT` and hands its rows to `consume` in blocks of whole rows, with the
    /// number of rows in each. The first row always comes alone, so a CSV header can be told apart;
    /// the others are gathered into blocks of about `blockBytes`, because work per callback (rather
    /// than per row, as libpq delivers them) is what keeps a multi-million-row COPY cheap.
    /// Returns the number of rows. If `consume` throws, the COPY is cancelled.
    @discardableResult
    public func copyOut(_ sql: String, blockBytes: Int = 256 << 10,
                        _ consume: (_ rows: UnsafeRawBufferPointer, _ count: Int) throws -> Void) throws -> Int {
        let connection = try live()
        let start = PQexec(connection, sql)
        defer { PQclear(start) }
        try check(start, sql: sql, accepting: [PGRES_COPY_OUT])
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: max(blockBytes, 1), alignment: 16)
        defer { block.deallocate() }
        var filled = 0, rowsInBlock = 0, rows = 0
        var failure: (any Error)?

        func deliver(_ bytes: UnsafeRawBufferPointer, _ count: Int) {
            guard failure == nil, count > 0 else { return }
            do {
                try consume(bytes, count)
            } catch {
                failure = error
                cancelRunningStatement(connection)
            }
        }
        func deliverBlock() {
            deliver(UnsafeRawBufferPointer(rebasing: block[0..<filled]), rowsInBlock)
            filled = 0
            rowsInBlock = 0
        }

        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = Int(PQgetCopyData(connection, &buffer, 0))
            if length > 0, let buffer {
                defer { PQfreemem(buffer) }
                rows += 1
                let row = UnsafeRawBufferPointer(start: buffer, count: length)
                if rows == 1 || length > block.count {
                    deliverBlock()
                    deliver(row, 1)
                    continue
                }
                if filled + length > block.count { deliverBlock() }
                UnsafeMutableRawBufferPointer(rebasing: block[filled..<(filled + length)]).copyMemory(from: row)
                filled += length
                rowsInBlock += 1
            } else if length == -1 {
                break
            } else {
                throw lost(connection, doing: sql)
            }
        }
        deliverBlock()
        let end = PQgetResult(connection)
        defer { PQclear(end) }
        while let extra = PQgetResult(connection) { PQclear(extra) }
        if let failure { throw failure }
        try check(end, sql: sql, accepting: [PGRES_COMMAND_OK])
        return rows
    }

    /// Runs a `COPY … FROM STDIN`; `produce` calls `send` with the data. If `produce` throws, the
    /// COPY is aborted (nothing of it is kept) and the error is rethrown. Returns rows copied.
    @discardableResult
    public func copyIn(_ sql: String, _ produce: (_ send: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> Int {
        let connection = try live()
        let start = PQexec(connection, sql)
        defer { PQclear(start) }
        try check(start, sql: sql, accepting: [PGRES_COPY_IN])
        var failure: (any Error)?
        do {
            try produce { data in
                guard data.count > 0 else { return }
                let status = PQputCopyData(connection, data.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(data.count))
                if status != 1 { throw self.lost(connection, doing: sql) }
            }
        } catch {
            failure = error
        }
        let reason = failure.map { "aborted by tributary: \($0)" }
        if PQputCopyEnd(connection, reason) != 1 { throw lost(connection, doing: sql) }
        let end = PQgetResult(connection)
        defer { PQclear(end) }
        while let extra = PQgetResult(connection) { PQclear(extra) }
        if let failure { throw failure }
        try check(end, sql: sql, accepting: [PGRES_COMMAND_OK])
        return Int(String(cString: PQcmdTuples(end))) ?? 0
    }

    // MARK: Replication (CopyBoth)

    /// Sends `START_REPLICATION …`; afterwards only `nextReplicationMessage` and
    /// `sendReplicationMessage` may be used on this connection.
    public func startReplication(_ command: String) throws {
        let connection = try live()
        let result = PQexec(connection, command)
        defer { PQclear(result) }
        try check(result, sql: command, accepting: [PGRES_COPY_BOTH])
    }

    /// The next CopyData message from the server, or nil when none arrived within `timeout` seconds.
    /// Uses libpq's non-blocking read and waits on the socket, so a quiet server never pins the thread.
    /// The message is libpq's own buffer, adopted rather than copied (`ByteStorage`): freed when
    /// the last value sliced from it is gone.
    public func nextReplicationMessage(timeout: Double) throws -> ByteSlice? {
        let connection = try live()
        for attempt in 0..<2 {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(connection, &buffer, 1)
            if length > 0, let buffer {
                replicationFlowing = true
                let bytes = UnsafeRawBufferPointer(start: buffer, count: Int(length))
                return ByteSlice(ByteStorage(adopting: bytes) { PQfreemem(UnsafeMutableRawPointer(mutating: $0.baseAddress)) })
            }
            if length == -1 {
                // The server ended the stream (a shutdown or an error): report its error if it sent one.
                let result = PQgetResult(connection)
                defer { PQclear(result) }
                try check(result, sql: "START_REPLICATION", accepting: [PGRES_COMMAND_OK, PGRES_COPY_OUT])
                throw PostgresError(kind: .connectionLost, endpoint: endpoint, message: "the server ended the replication stream")
            }
            if length == -2 { throw lost(connection, doing: "START_REPLICATION") }
            guard attempt == 0 else { return nil }
            if replicationFlowing {
                // Everything the socket held is read: wait a moment before reading it again. A
                // reader that keeps up makes the walsender send each message in a system call of
                // its own; one that lets two milliseconds of messages pile up lets it send them
                // in large writes. `replicate` of a backlog of about 1M changes took 7.3-8.4 s,
                // the source 7.2-8.3 CPU-s (5.5-6.4 of them system time), and with the wait 5.0 s
                // and 4.9-5.0 CPU-s (3.4-3.6). Only when the socket is empty: libpq reads a few
                // kilobytes at a time, and waiting after each throttled the stream (10.9 s).
                replicationFlowing = false
                var pending: Int32 = 0
                if ioctl(PQsocket(connection), UInt(FIONREAD), &pending) == 0 && pending == 0 { usleep(2000) }
            }
            var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(max(0, timeout) * 1000))
            if ready < 0 && errno != EINTR { throw lost(connection, doing: "poll") }
            if ready <= 0 { return nil }
            if PQconsumeInput(connection) == 0 { throw lost(connection, doing: "START_REPLICATION") }
        }
        return nil
    }

    /// Ends a replication stream as the protocol means it: CopyDone, then whatever the server still
    /// sends is read and dropped (the slot sends it again) until the server ends its side. Every
    /// status update sent before has then been processed; a close in mid-stream can lose the last
    /// one, when the walsender, blocked sending, dies on the reset before reading it. Best effort
    /// within `timeout` seconds: a server that has gone needs no goodbye.
    public func endReplication(timeout: Double) {
        guard let connection = handle, PQputCopyEnd(connection, nil) == 1 else { return }
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < deadline {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(connection, &buffer, 1)
            if let buffer { PQfreemem(buffer) }
            if length > 0 { continue }
            if length == -1 {
                while let result = PQgetResult(connection) { PQclear(result) }
                return
            }
            if length == -2 { return }
            let left = deadline - ContinuousClock.now
            var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            if poll(&descriptor, 1, milliseconds) <= 0 || PQconsumeInput(connection) == 0 { return }
        }
    }

    /// Sends a CopyData message (a standby status update) and flushes it.
    public func sendReplicationMessage(_ bytes: [UInt8]) throws {
        let connection = try live()
        let sent = bytes.withUnsafeBytes { buffer in
            PQputCopyData(connection, buffer.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(buffer.count))
        }
        guard sent == 1, PQflush(connection) == 0 else { throw lost(connection, doing: "standby status update") }
    }

    /// Runs `body` isolated to this connection, with suspension points allowed (awaiting other
    /// actors, such as the staging store) between its synchronous libpq calls.
    public func runAsync<T: Sendable>(_ body: @Sendable (isolated PostgresConnection) async throws -> T) async throws -> T {
        try await body(self)
    }

    // MARK: LISTEN/NOTIFY

    /// Waits up to `timeout` seconds for notifications on channels this connection LISTENs to.
    public func waitForNotifications(timeout: Double) throws -> [Notification] {
        let connection = try live()
        var notifications = drainNotifications(connection)
        guard notifications.isEmpty else { return notifications }
        var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(timeout * 1000))
        if ready > 0 {
            if PQconsumeInput(connection) == 0 { throw lost(connection, doing: "LISTEN") }
            notifications = drainNotifications(connection)
        }
        return notifications
    }

    private func drainNotifications(_ connection: OpaquePointer) -> [Notification] {
        var result: [Notification] = []
        while let notify = PQnotifies(connection) {
            result.append(Notification(channel: String(cString: notify.pointee.relname),
                                       payload: String(cString: notify.pointee.extra)))
            PQfreemem(notify)
        }
        return result
    }

    // MARK: Internals

    private func live() throws -> OpaquePointer {
        guard let handle else {
            throw PostgresError(kind: .connectionLost, endpoint: endpoint, message: "connection is closed")
        }
        return handle
    }

    private func cancelRunningStatement(_ connection: OpaquePointer) {
        guard let cancel = PQgetCancel(connection) else { return }
        var error = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancel, &error, Int32(error.count))
        PQfreeCancel(cancel)
    }

    private func lost(_ connection: OpaquePointer, doing sql: String) -> PostgresError {
        PostgresError(kind: .connectionLost, endpoint: endpoint,
                      message: String(cString: PQerrorMessage(connection)) + " (during \(Self.summary(sql)))")
    }

    private func check(_ result: OpaquePointer?, sql: String, accepting: [ExecStatusType]) throws {
        guard let result else {
            throw lost(handle!, doing: sql)
        }
        let status = PQresultStatus(result)
        if accepting.contains(status) { return }
        func field(_ code: Character) -> String? {
            PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
        }
        let broken = handle.map { PQstatus($0) != CONNECTION_OK } ?? true
        let message = field("M") ?? String(cString: PQresultErrorMessage(result))
        throw PostgresError(
            kind: broken ? .connectionLost : (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR ? .statementFailed : .protocolViolation),
            endpoint: endpoint, sqlState: field("C"),
            message: message.isEmpty ? "unexpected result \(String(cString: PQresStatus(status))) for \(Self.summary(sql))" : message,
            detail: field("D"), hint: field("H"))
    }

    private static func read(_ result: OpaquePointer) -> QueryResult {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            rows.append((0..<columnCount).map { column in
                PQgetisnull(result, Int32(row), Int32(column)) == 1
                    ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
            })
        }
        return QueryResult(columns: columns, values: rows, affectedRows: Int(String(cString: PQcmdTuples(result))) ?? 0)
    }

    static func summary(_ sql: String) -> String {
        let flat = PostgresError.oneLine(sql)
        return flat.count > 80 ? String(flat.prefix(77)) + "..." : flat
    }

    /// "name (host:port/dbname as user)" from a conninfo, without the password.
    public nonisolated static func describe(_ conninfo: String, name: String) -> String {
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &error) else {
            if let error { PQfreemem(error) }
            return name
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { values[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        let host = values["host"] ?? values["hostaddr"] ?? "localhost"
        let port = values["port"] ?? "5432"
        var where_ = "\(host):\(port)"
        if let database = values["dbname"] { where_ += "/\(database)" }
        if let user = values["user"] { where_ += " as \(user)" }
        return "\(name) (\(where_))"
    }
}

private func withCStringArrays<R>(_ keys: [String], _ values: [String],
                                  _ body: (UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let keyPointers = keys.map { UnsafePointer(strdup($0)) } + [nil]
    let valuePointers = values.map { UnsafePointer(strdup($0)) } + [nil]
    defer {
        keyPointers.forEach { free(UnsafeMutablePointer(mutating: $0)) }
        valuePointers.forEach { free(UnsafeMutablePointer(mutating: $0)) }
    }
    return body(keyPointers, valuePointers)
}

private func withOptionalCStrings<R>(_ values: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let pointers: [UnsafePointer<CChar>?] = values.map { $0.map { UnsafePointer(strdup($0)) } ?? nil }
    defer { pointers.forEach { free(UnsafeMutablePointer(mutating: $0)) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
}
