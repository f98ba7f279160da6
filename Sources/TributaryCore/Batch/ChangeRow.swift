import CCSVTranscoder

/// The metadata columns that lead every CDC file's rows (DESIGN.md §3).
public enum ChangeColumns {
    /// I, U, D, or T (a truncate of the table at this position).
    public static let operation = "_op"
    /// Commit LSN of the transaction.
    public static let lsn = "_lsn"
    /// Order within the batch.
    public static let sequence = "_seq"
    /// Columns pgoutput marked as unchanged TOAST: the stored value must be kept, never NULLed.
    public static let unchanged = "_unchanged"

    public static let all = [operation, lsn, sequence, unchanged]
}

public enum ChangeOperation: String, Sendable, Codable {
    case insert = "I", update = "U", delete = "D", truncate = "T"
}

/// Turns decoded changes into CSV rows of a CDC file: `_op,_lsn,_seq,_unchanged,<columns…>`.
public struct ChangeRowEncoder: Sendable {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The relation's columns in the order pgoutput sends them.
    public let columnNames: [String]
    /// Positions of the merge key among them.
    public let keyPositions: [Int]

    public init(columnNames: [String], key: [String]) throws {
        self.columnNames = columnNames
        keyPositions = try key.map { name in
            guard let position = columnNames.firstIndex(of: name) else {
                throw Failure(description: "key column \"\(name)\" is not among the replicated columns \(columnNames)")
            }
            return position
        }
    }

    public var header: [UInt8] {
        var line: [UInt8] = []
        for (index, name) in (ChangeColumns.all + columnNames).enumerated() {
            if index > 0 { line.append(UInt8(ascii: ",")) }
            CSVEncoding.appendField(name, to: &line)
        }
        line.append(10)
        return line
    }

    /// The rows one change becomes. An update whose key changed is a delete of the old key followed
    /// by an upsert of the new row; so is the old-row form (REPLICA IDENTITY FULL) when the key differs.
    public func rows(for message: PgOutputMessage) throws -> [(ChangeOperation, [PgOutputMessage.TupleValue])] {
        switch message {
        case .insert(_, _, let new):
            return [(.insert, try checked(new))]
        case .update(_, _, let old, let new):
            let new = try checked(new)
            if let old, try keyChanged(from: checked(old.values), to: new) {
                return [(.delete, try checked(old.values)), (.update, new)]
            }
            return [(.update, new)]
        case .delete(_, _, let old):
            return [(.delete, try checked(old.values))]
        case .truncate:
            return [(.truncate, Array(repeating: .null, count: columnNames.count))]
        default:
            return []
        }
    }

    /// Values at least this large go to the sink in pieces rather than into the line: a row with a
    /// value of hundreds of megabytes is never built whole (memory stays the value plus a little).
    public static let streamedValueBytes = 1 << 20

    /// Writes one CSV row to `sink`; a value of `streamedValueBytes` or more is written in pieces,
    /// through `line` (emptied first, kept for its capacity), without being copied into it.
    /// - Parameter lsn: the commit LSN's text form, made once per transaction.
    public func write(_ operation: ChangeOperation, _ values: [PgOutputMessage.TupleValue], lsn: [UInt8], sequence: Int,
                      line: inout [UInt8], sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let bound = try Self.bound(values, lsn: lsn)
        guard bound < Self.streamedValueBytes else {
            line.removeAll(keepingCapacity: true)
            try withoutActuallyEscaping(sink) { try appendRow(operation, values, lsn: lsn, sequence: sequence, to: &line, streamingTo: $0) }
            try line.withUnsafeBytes(sink)
            // A line that held a large quoted value gives its memory back.
            if line.capacity > 4 * Self.streamedValueBytes { line = [] }
            return
        }
        // Into a temporary buffer (on the stack where it has room), not an array grown field by field.
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bound) { buffer in
            let written = writeRow(operation, values, lsn: lsn, sequence: sequence, into: buffer.baseAddress!)
            try sink(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<written]))
        }
    }

    /// Appends one CSV row.
    /// - Parameter lsn: the commit LSN's text form, made once per transaction.
    public func append(_ operation: ChangeOperation, _ values: [PgOutputMessage.TupleValue], lsn: [UInt8], sequence: Int,
                       to line: inout [UInt8]) throws {
        try appendRow(operation, values, lsn: lsn, sequence: sequence, to: &line, streamingTo: nil)
    }

    /// Bytes a row of `values` takes at most: each value quoted with every byte a quote, the
    /// metadata fields at their longest, the separators and the line feed. `.max` for a row with
    /// unchanged values (rare), which `appendRow` writes with its `_unchanged`.
    private static func bound(_ values: [PgOutputMessage.TupleValue], lsn: [UInt8]) throws -> Int {
        var bound = 1 + 1 + lsn.count + 1 + 20 + 1 + 1
        var unchanged = false
        for value in values {
            switch value {
            case .null: bound += 1
            case .unchanged: bound += 1; unchanged = true
            case .text(let bytes): bound += 2 * bytes.count + 3
            case .binary: throw Failure(description: "a binary tuple value arrived, but Tributary asks pgoutput for text only")
            }
        }
        return unchanged ? .max : bound
    }

    /// Writes a row with no unchanged values into `out`, which has room for its `bound`; returns
    /// the bytes written.
    private func writeRow(_ operation: ChangeOperation, _ values: [PgOutputMessage.TupleValue], lsn: [UInt8], sequence: Int,
                          into out: UnsafeMutablePointer<UInt8>) -> Int {
        var at = 0
        out[at] = operation.rawValue.utf8.first!
        out[at + 1] = UInt8(ascii: ",")
        at += 2
        lsn.withUnsafeBufferPointer { (out + at).update(from: $0.baseAddress!, count: $0.count) }
        at += lsn.count
        out[at] = UInt8(ascii: ",")
        at += 1
        at += Self.writeDecimal(sequence, into: out + at)
        // `_unchanged`, empty.
        out[at] = UInt8(ascii: ",")
        at += 1
        for value in values {
            out[at] = UInt8(ascii: ",")
            at += 1
            if case .text(let bytes) = value {
                // The storage outlives the call: `values` holds it.
                let base = bytes.storage.bytes.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + bytes.startIndex }
                at += tributary_csv_write_field(out + at, base ?? UnsafePointer(out), bytes.count)
            }
        }
        out[at] = 10
        return at + 1
    }

    /// A non-negative integer's digits; returns how many.
    private static func writeDecimal(_ value: Int, into out: UnsafeMutablePointer<UInt8>) -> Int {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &digits) { digits in
            var rest = value.magnitude, count = 0
            repeat {
                digits[19 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            out.update(from: digits.baseAddress!.assumingMemoryBound(to: UInt8.self) + 20 - count, count: count)
            return count
        }
    }

    /// The row into `line`; with a `sink`, a value of `streamedValueBytes` or more goes to it
    /// instead, after what `line` held (which is then emptied).
    private func appendRow(_ operation: ChangeOperation, _ values: [PgOutputMessage.TupleValue], lsn: [UInt8], sequence: Int,
                           to line: inout [UInt8], streamingTo sink: ((UnsafeRawBufferPointer) throws -> Void)?) throws {
        line.append(operation.rawValue.utf8.first!)
        line.append(UInt8(ascii: ","))
        line.append(contentsOf: lsn)
        line.append(UInt8(ascii: ","))
        line.append(contentsOf: String(sequence).utf8)
        line.append(UInt8(ascii: ","))
        var unchanged: [String] = []
        for (index, value) in values.enumerated() where value == .unchanged { unchanged.append(columnNames[index]) }
        if !unchanged.isEmpty { CSVEncoding.appendField(PostgresArray.literal(unchanged), to: &line) }
        for value in values {
            line.append(UInt8(ascii: ","))
            switch value {
            case .null, .unchanged:
                break
            case .text(let bytes) where sink != nil && bytes.count >= Self.streamedValueBytes:
                try line.withUnsafeBytes(sink!)
                line.removeAll(keepingCapacity: true)
                try bytes.withUnsafeBytes { try CSVEncoding.writeField($0, chunk: Self.streamedValueBytes, scratch: &line, sink: sink!) }
            case .text(let bytes):
                bytes.withUnsafeBytes { CSVEncoding.appendField($0, to: &line) }
            case .binary:
                throw Failure(description: "a binary tuple value arrived, but Tributary asks pgoutput for text only")
            }
        }
        line.append(10)
    }

    private func checked(_ values: [PgOutputMessage.TupleValue]) throws -> [PgOutputMessage.TupleValue] {
        guard values.count == columnNames.count else {
            throw Failure(description: "a tuple has \(values.count) values but the relation has \(columnNames.count) columns")
        }
        return values
    }

    private func keyChanged(from old: [PgOutputMessage.TupleValue], to new: [PgOutputMessage.TupleValue]) throws -> Bool {
        keyPositions.contains { old[$0] != new[$0] && new[$0] != .unchanged }
    }
}
