import CCSVTranscoder
import Glibc

/// Rewrites a staged CSV file (a header row, then rows in PostgreSQL's CSV dialect) into COPY's
/// binary format, for tables whose every column has a binary form taken straight from its text
/// (`binaryKinds`): integers, booleans, uuids, text of any length limit, floats, numeric, dates,
/// timestamps, times, bytea, json and jsonb; and a change batch's metadata columns.
///
/// Why: in text format the target's backend scans every line twice (for its end, then for its
/// fields) and parses every number; in binary format it reads lengths and copies. Loading
/// pgbench_accounts took the target's backend about a fifth less CPU in binary format (13.3
/// against 16.5 CPU-s for 20M rows), and a snapshot's largest table loads on one backend, so
/// that fifth comes off the whole snapshot's time. The client's cost is that of the text
/// rewrite it replaces.
///
/// Change batches go the same way (`init(changesOf:)`): in text format the target's COPY of a
/// batch cost more backend CPU than its merge (5.6 against 3.2 s on the wide-row backlog).
///
/// The values are exactly those the text format would have stored: each field is read as
/// PostgreSQL's CSV reader reads it, and only in the form its output function writes under the
/// pinned session settings (`SessionProfile.textForms`: ISO dates in UTC, shortest exact floats,
/// hex bytea). Integers are range-checked here, floats are read with the same correctly rounded
/// `strtod` as float8in, dates and timestamps are counted on the same proleptic Gregorian
/// calendar, numeric keeps its display scale and lets the server apply the column's typmod, as
/// text input would; text goes as its bytes, and the server still checks length limits,
/// encoding and JSON syntax. Anything else (a value not in its output function's form) stops
/// the load as a corrupt file, naming its line and column, rather than being guessed at. Binary
/// COPY has no `HEADER match`, so the header row is checked against the expected column names
/// here.
public struct CSVToBinaryTranscoder: COPYRewriter {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case header(expected: [String], found: [String]?)
        case unterminatedQuote(line: Int)
        case strayCarriageReturn(line: Int)
        case fieldCount(line: Int, fields: Int, expected: Int)
        case badValue(line: Int, column: String)

        public var description: String {
            switch self {
            case .header(let expected, let found):
                return "CSV header \(found.map { "(\($0.joined(separator: ",")))" } ?? "missing"), expected (\(expected.joined(separator: ",")))"
            case .unterminatedQuote(let line): return "CSV line \(line): a quoted field is not closed before the data ends"
            case .strayCarriageReturn(let line): return "CSV line \(line): carriage return outside quotes and not before a line feed"
            case .fieldCount(let line, let fields, let expected): return "CSV line \(line): \(fields == expected ? "more than" : "\(fields)") fields, expected \(expected)"
            case .badValue(let line, let column): return "CSV line \(line): the value of column \(column) is not in its type's text form"
            }
        }
    }

    /// `COPY … (FORMAT binary)`'s file header: signature, flags 0, no header extension.
    static let fileHeader: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00] + [0, 0, 0, 0] + [0, 0, 0, 0]
    static let fileTrailer: [UInt8] = [0xFF, 0xFF]

    private let kinds: [UInt8]
    private let columnNames: [String]
    private var state = tributary_binary_state(rows: 0, failure: 0, column: 0, out_of_room: 0)
    /// Input of a record that continues in the next chunk.
    private var carry: [UInt8] = []
    private var output: [UInt8] = []
    private var headerChecked = false
    private var started = false
    /// Whether the output begins with the binary stream's header and ends with its trailer. Off
    /// for the files after the first, and before the last, of one COPY that loads several staged
    /// files (a `BatchGroup`'s of one table): one statement instead of one per file.
    public var writesFileHeader = true
    public var writesFileTrailer = true

    /// Nil when a column of `relation` has no binary form here: the table loads in text format.
    public init?(relation: RelationSchema) {
        guard let kinds = relation.binaryKinds else { return nil }
        self.kinds = kinds
        columnNames = relation.columnNames
    }

    /// For a change batch of `relation` (`_op,_lsn,_seq,_unchanged`, then its columns); nil when
    /// a column of it has no binary form here: the batch loads in text format.
    public init?(changesOf relation: RelationSchema) {
        self.init(changesOf: relation, metadata: Self.changeKinds)
    }

    /// For a change batch of `relation` whose every change is an insert, COPYed straight into its
    /// STG table (`DirectInsert.copy`): each tuple is `_lsn`, then the columns; `_op` must be `I`
    /// (anything else stops the load as a corrupt file), `_seq` and `_unchanged` are read and left
    /// out. Nil as `init(changesOf:)`.
    public init?(insertsOf relation: RelationSchema) {
        self.init(changesOf: relation, metadata: Self.insertKinds)
    }

    /// As `init(insertsOf:)`, for a change batch of inserts and updates that keep no stored value:
    /// `_op` must be `I` or `U`, and `_unchanged` empty.
    public init?(upsertsOf relation: RelationSchema) {
        self.init(changesOf: relation, metadata: Self.upsertKinds)
    }

    /// The keys of such a batch (`init(upsertsOf:)`): each tuple is `_lsn`, then the key columns in
    /// the relation's order (`DirectInsert.keyColumns`); everything else is read, checked as
    /// there, and left out.
    public init?(keysOf relation: RelationSchema) {
        let key = Set(relation.key)
        self.init(changesOf: relation, metadata: Self.upsertKinds) { kinds in
            zip(relation.columnNames, kinds).map { key.contains($0) ? $1 : UInt8(TRIBUTARY_BINARY_SKIP) }
        }
    }

    /// A change batch's conversion: the kinds of its four metadata fields, then its columns' kinds
    /// as `columns` makes them of the relation's.
    private init?(changesOf relation: RelationSchema, metadata: [UInt8], columns: ([UInt8]) -> [UInt8] = { $0 }) {
        guard let kinds = relation.binaryKinds else { return nil }
        self.kinds = metadata + columns(kinds)
        columnNames = ChangeColumns.all + relation.columnNames
    }

    /// `_op` an insert, `_lsn`, `_seq` and `_unchanged` left out.
    private static let insertKinds = [TRIBUTARY_BINARY_SKIP_INSERT, TRIBUTARY_BINARY_LSN, TRIBUTARY_BINARY_SKIP,
                                      TRIBUTARY_BINARY_SKIP].map { UInt8($0) }

    /// `_op` an insert or update, `_lsn`, `_seq` left out, `_unchanged` empty.
    private static let upsertKinds = [TRIBUTARY_BINARY_SKIP_UPSERT, TRIBUTARY_BINARY_LSN, TRIBUTARY_BINARY_SKIP,
                                      TRIBUTARY_BINARY_SKIP_NULL].map { UInt8($0) }

    /// `_op` text, `_lsn` pg_lsn, `_seq` bigint, `_unchanged` text[] as `ChangeRowEncoder` writes it.
    static let changeKinds = [TRIBUTARY_BINARY_TEXT, TRIBUTARY_BINARY_LSN, TRIBUTARY_BINARY_INT8,
                              TRIBUTARY_BINARY_QUOTED_TEXT_ARRAY].map { UInt8($0) }

    /// Converts the records `input` completes and hands them to `sink`; a record may span chunks.
    public mutating func transcode(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        if !started {
            started = true
            if writesFileHeader { try Self.fileHeader.withUnsafeBytes { try sink($0) } }
        }
        var rest = input
        // Complete the carried record with the input up to each next line feed (one that ends it,
        // unless it lies inside quotes), so that the bulk of every chunk is converted in place.
        while !carry.isEmpty {
            guard !rest.isEmpty else { return }
            guard let found = memchr(rest.baseAddress!, 0x0A, rest.count) else {
                carry.append(contentsOf: rest)
                return
            }
            let through = rest.baseAddress!.distance(to: UnsafeRawPointer(found)) + 1
            carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[0..<through]))
            rest = UnsafeRawBufferPointer(rebasing: rest[through...])
            let consumed = try carry.withUnsafeBytes { try convert($0, final: false, sink: sink) }
            carry.removeFirst(consumed)
        }
        guard !rest.isEmpty else { return }
        let consumed = try convert(rest, final: false, sink: sink)
        carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[consumed...]))
    }

    /// Call at the end of the data: converts a last record without its line feed, throws if the
    /// data ended inside one, and ends the binary stream.
    public mutating func finish(sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        if !carry.isEmpty {
            let consumed = try carry.withUnsafeBytes { try convert($0, final: true, sink: sink) }
            carry.removeFirst(consumed)
        }
        guard headerChecked else { throw Failure.header(expected: columnNames, found: nil) }
        if writesFileTrailer { try Self.fileTrailer.withUnsafeBytes { try sink($0) } }
    }

    /// Converts the whole records of `input` (the header first); returns the bytes consumed.
    private mutating func convert(_ input: UnsafeRawBufferPointer, final: Bool, sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        var consumed = 0
        if !headerChecked {
            var header: [UInt8] = []
            let used = try records(input, kinds: [UInt8](repeating: UInt8(TRIBUTARY_BINARY_TEXT), count: columnNames.count),
                                   final: final, limit: 1) { header.append(contentsOf: $0) }
            guard used > 0 else { return 0 }
            let names = header.withUnsafeBytes { Self.firstTupleTexts($0) }
            guard let names, names == columnNames else { throw Failure.header(expected: columnNames, found: names) }
            headerChecked = true
            consumed = used
        }
        let rest = UnsafeRawBufferPointer(rebasing: input[consumed...])
        guard !rest.isEmpty else { return consumed }
        return consumed + (try records(rest, kinds: kinds, final: final, sink: sink))
    }

    /// The first size of the output buffer. It grows only when a single record needs more: sized
    /// for the worst case of a whole chunk (22 times its bytes, for many short fields), a record
    /// of hundreds of megabytes carried across chunks would have taken gigabytes.
    public static let initialOutputBytes = 4 << 20

    /// The C conversion over `input`, as many calls as the output buffer takes, each call's tuples
    /// handed to `sink`; returns the bytes consumed (at most `limit` records).
    private mutating func records(_ input: UnsafeRawBufferPointer, kinds: [UInt8], final: Bool, limit: Int = .max,
                                  sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        var consumed = 0, left = limit
        while consumed < input.count && left > 0 {
            if output.isEmpty { output = Self.uninitializedBuffer(Self.initialOutputBytes) }
            let rest = UnsafeRawBufferPointer(rebasing: input[consumed...])
            let rowsBefore = state.rows
            var written = 0
            let columns = Int32(kinds.count)
            let used = output.withUnsafeMutableBufferPointer { out in
                kinds.withUnsafeBufferPointer { kinds in
                    tributary_csv_to_binary(&state, kinds.baseAddress!, columns, rest.baseAddress!.assumingMemoryBound(to: UInt8.self), rest.count,
                                            final ? 1 : 0, left, out.baseAddress!, out.count, &written)
                }
            }
            guard used >= 0 else { throw failure(columns: kinds.count) }
            if written > 0 { try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<written])) } }
            consumed += used
            left -= Int(state.rows - rowsBefore)
            guard state.out_of_room != 0 else { break }
            // The next record did not fit: with nothing converted, it alone needs more room.
            if used == 0 { output = Self.uninitializedBuffer(output.count * 2) }
        }
        if final && limit == .max && consumed < input.count { throw Failure.unterminatedQuote(line: Int(state.rows) + 1) }
        return consumed
    }

    /// Memory the C loop writes before anything reads it: not zeroed, so the pages a large buffer
    /// never uses are never touched.
    private static func uninitializedBuffer(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// What stopped the C conversion, as the operator reads it.
    private func failure(columns: Int) -> Failure {
        let line = Int(state.rows) + 1
        switch state.failure {
        case Int32(TRIBUTARY_BINARY_UNTERMINATED_QUOTE): return .unterminatedQuote(line: line)
        case Int32(TRIBUTARY_BINARY_STRAY_CR): return .strayCarriageReturn(line: line)
        case Int32(TRIBUTARY_BINARY_FIELD_COUNT):
            if !headerChecked { return .header(expected: columnNames, found: nil) }
            return .fieldCount(line: line, fields: Int(state.column), expected: columns)
        default:
            let index = Int(state.column)
            return .badValue(line: line, column: index < columnNames.count ? columnNames[index] : "#\(index + 1)")
        }
    }

    /// The texts of the first binary tuple in `tuples` (all fields of the text kind), nil if NULL.
    static func firstTupleTexts(_ tuples: UnsafeRawBufferPointer) -> [String]? {
        guard tuples.count >= 2 else { return nil }
        let fields = Int(tuples[0]) << 8 | Int(tuples[1])
        var offset = 2, texts: [String] = []
        for _ in 0..<fields {
            guard offset + 4 <= tuples.count else { return nil }
            let length = Int32(bitPattern: UInt32(tuples[offset]) << 24 | UInt32(tuples[offset + 1]) << 16
                               | UInt32(tuples[offset + 2]) << 8 | UInt32(tuples[offset + 3]))
            offset += 4
            guard length >= 0, offset + Int(length) <= tuples.count else { return nil }
            texts.append(String(decoding: UnsafeRawBufferPointer(rebasing: tuples[offset..<(offset + Int(length))]), as: UTF8.self))
            offset += Int(length)
        }
        return texts
    }
}

extension RelationSchema {
    /// How each column goes into COPY's binary format (`CSVToBinaryTranscoder`), or nil when a
    /// column's STG type has no binary form taken straight from its text here: the table then loads
    /// in text format. Decided by the STG type (as `format_type` writes it, typmod included), which
    /// is what the target's COPY reads into; arrays, intervals, network types, enums and the
    /// rest load as text.
    public var binaryKinds: [UInt8]? {
        var kinds: [UInt8] = []
        for column in columns {
            guard let kind = Self.binaryKind(of: column.stagingType) else { return nil }
            kinds.append(UInt8(kind))
        }
        return kinds.isEmpty ? nil : kinds
    }

    private static func binaryKind(of type: String) -> Int? {
        switch type {
        case "smallint": return TRIBUTARY_BINARY_INT2
        case "integer": return TRIBUTARY_BINARY_INT4
        case "bigint": return TRIBUTARY_BINARY_INT8
        case "boolean": return TRIBUTARY_BINARY_BOOL
        case "uuid": return TRIBUTARY_BINARY_UUID
        case "text", "character varying", "character", "bpchar", "json": return TRIBUTARY_BINARY_TEXT
        case "real": return TRIBUTARY_BINARY_FLOAT4
        case "double precision": return TRIBUTARY_BINARY_FLOAT8
        case "numeric": return TRIBUTARY_BINARY_NUMERIC
        case "date": return TRIBUTARY_BINARY_DATE
        case "timestamp without time zone": return TRIBUTARY_BINARY_TIMESTAMP
        case "timestamp with time zone": return TRIBUTARY_BINARY_TIMESTAMPTZ
        case "time without time zone": return TRIBUTARY_BINARY_TIME
        case "bytea": return TRIBUTARY_BINARY_BYTEA
        case "jsonb": return TRIBUTARY_BINARY_JSONB
        case "pg_lsn": return TRIBUTARY_BINARY_LSN
        default:
            // With a typmod: `character varying(n)`, `numeric(p,s)`, `timestamp(p) with time zone`…;
            // not their arrays.
            guard !type.hasSuffix("]"), let open = type.firstIndex(of: "("), let close = type.firstIndex(of: ")") else { return nil }
            switch type[..<open] + type[type.index(after: close)...] {
            case "character varying", "character": return TRIBUTARY_BINARY_TEXT
            case "numeric": return TRIBUTARY_BINARY_NUMERIC
            case "timestamp without time zone": return TRIBUTARY_BINARY_TIMESTAMP
            case "timestamp with time zone": return TRIBUTARY_BINARY_TIMESTAMPTZ
            case "time without time zone": return TRIBUTARY_BINARY_TIME
            default: return nil
            }
        }
    }
}
