/// The bytes of one received message, owned once and shared by every slice taken from it: memory
/// another library allocated (libpq's CopyData buffer, released with the last slice), or a copy
/// of an array.
///
/// Why not an array: libpq hands each replication message over in memory of its own, so an array
/// is a second copy of it. For a value of hundreds of megabytes both copies lived at once, on top
/// of libpq's input buffer: `replicate` peaked at 3.4 times the value's text. Adopting libpq's
/// buffer, and slicing values out of it in place, leaves its input buffer and one copy.
public final class ByteStorage: @unchecked Sendable {
    // Immutable after init, so safe to share across threads.
    public let bytes: UnsafeRawBufferPointer
    private let release: @Sendable (UnsafeRawBufferPointer) -> Void

    /// Takes ownership of `bytes`: `release` frees them when the last slice is gone.
    public init(adopting bytes: UnsafeRawBufferPointer, release: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.bytes = bytes
        self.release = release
    }

    /// A copy of `bytes`.
    public convenience init(copying bytes: some Collection<UInt8>) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        _ = copy.initializeMemory(as: UInt8.self, from: bytes)
        self.init(adopting: UnsafeRawBufferPointer(copy)) { $0.deallocate() }
    }

    deinit { release(bytes) }
}

/// A range of a `ByteStorage`, indexed as the whole storage is (like an `ArraySlice`): the value
/// of one column, or a message's payload, without a copy.
public struct ByteSlice: RandomAccessCollection, Sendable, Hashable, CustomStringConvertible {
    public let storage: ByteStorage
    public let startIndex: Int
    public let endIndex: Int

    public init(_ storage: ByteStorage, range: Range<Int>? = nil) {
        let range = range ?? 0..<storage.bytes.count
        precondition(range.lowerBound >= 0 && range.upperBound <= storage.bytes.count, "slice outside its storage")
        self.storage = storage
        startIndex = range.lowerBound
        endIndex = range.upperBound
    }

    /// A slice of its own copy of `bytes` (tests, and messages read back from a spill file).
    public init(copying bytes: some Collection<UInt8>) {
        self.init(ByteStorage(copying: bytes))
    }

    public subscript(position: Int) -> UInt8 {
        precondition(position >= startIndex && position < endIndex, "index outside the slice")
        return storage.bytes[position]
    }

    public subscript(bounds: Range<Int>) -> ByteSlice {
        precondition(bounds.lowerBound >= startIndex && bounds.upperBound <= endIndex, "range outside the slice")
        return ByteSlice(storage, range: bounds)
    }

    public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try withExtendedLifetime(storage) { try body(UnsafeRawBufferPointer(rebasing: storage.bytes[startIndex..<endIndex])) }
    }

    public static func == (left: ByteSlice, right: ByteSlice) -> Bool {
        left.count == right.count && left.withUnsafeBytes { l in right.withUnsafeBytes { r in l.elementsEqual(r) } }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public var description: String { "\(count) bytes" }
}
