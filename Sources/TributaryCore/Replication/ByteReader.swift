/// Reads big-endian wire data. Every read is bounds-checked and throws; nothing returns a sentinel.
public struct ByteReader {
    public struct Underflow: Error, Equatable {
        public let needed: Int
        public let remaining: Int
    }

    /// The bytes read; `offset` indexes them as the slice does (from its `startIndex`), so a
    /// message's payload is read where it lies in the message, without a copy.
    public let bytes: ByteSlice
    public private(set) var offset: Int

    public init(_ bytes: ByteSlice) {
        self.bytes = bytes
        self.offset = bytes.startIndex
    }

    /// Reads a copy of `bytes`.
    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = ByteSlice(copying: bytes)
        self.offset = offset
    }

    public var remaining: Int { bytes.endIndex - offset }

    private mutating func take(_ count: Int) throws -> Range<Int> {
        guard count >= 0, remaining >= count else { throw Underflow(needed: count, remaining: remaining) }
        defer { offset += count }
        return offset..<(offset + count)
    }

    public mutating func uint8() throws -> UInt8 { bytes[try take(1).lowerBound] }

    public mutating func int16() throws -> Int16 { Int16(bitPattern: UInt16(try unsigned(2))) }

    public mutating func int32() throws -> Int32 { Int32(bitPattern: UInt32(try unsigned(4))) }

    public mutating func uint32() throws -> UInt32 { UInt32(try unsigned(4)) }

    public mutating func int64() throws -> Int64 { Int64(bitPattern: try unsigned(8)) }

    public mutating func lsn() throws -> LSN { LSN(try unsigned(8)) }

    private mutating func unsigned(_ width: Int) throws -> UInt64 {
        var value: UInt64 = 0
        for index in try take(width) { value = value << 8 | UInt64(bytes[index]) }
        return value
    }

    public mutating func bytes(_ count: Int) throws -> ByteSlice { bytes[try take(count)] }

    /// A NUL-terminated string (PostgreSQL's `pq_sendstring`).
    public mutating func cString() throws -> String {
        guard let end = bytes[offset...].firstIndex(of: 0) else { throw Underflow(needed: 1, remaining: 0) }
        let text = String(decoding: bytes[offset..<end], as: UTF8.self)
        offset = end + 1
        return text
    }
}

/// Big-endian writing, for the few messages Tributary sends.
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func uint8(_ value: UInt8) { bytes.append(value) }

    public mutating func uint32(_ value: UInt32) { unsigned(UInt64(value), 4) }

    public mutating func int64(_ value: Int64) { unsigned(UInt64(bitPattern: value), 8) }

    public mutating func lsn(_ value: LSN) { unsigned(value.value, 8) }

    private mutating func unsigned(_ value: UInt64, _ width: Int) {
        for shift in stride(from: (width - 1) * 8, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
}
