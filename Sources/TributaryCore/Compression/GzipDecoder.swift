import CISAL

/// Streaming gzip decompression with ISA-L igzip (several times faster than zlib's inflate).
/// Every member's CRC-32 is checked, members written one after another are read as one stream
/// (as gzip does), and `finish()` throws when the data ends inside a member, so a truncated object
/// is never mistaken for a complete one.
public final class GzipDecoder {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case corrupt(String)
        case truncated

        public var description: String {
            switch self {
            case .corrupt(let message): return "not valid gzip data (\(message))"
            case .truncated: return "gzip data ends before its trailer: the object is truncated"
            }
        }
    }

    private let state: UnsafeMutablePointer<tributary_inflate>
    /// Not zeroed, as `GzipEncoder`'s: igzip writes what is read of it.
    private let output: UnsafeMutableRawBufferPointer
    /// Between members: the previous one is complete and the next has not begun.
    private var atMemberBoundary = false
    private var sawInput = false

    public init() {
        guard let state = tributary_inflate_new() else { fatalError("out of memory for a gzip stream") }
        self.state = state
        output = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
    }

    deinit {
        tributary_inflate_free(state)
        output.deallocate()
    }

    public func decompress(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard input.count > 0 else { return }
        precondition(input.count <= Int(UInt32.max))
        sawInput = true
        var offset = 0
        let capacity = UInt32(output.count)
        while true {
            if atMemberBoundary {
                guard offset < input.count else { return }
                tributary_inflate_next_member(state)
                atMemberBoundary = false
            }
            var consumed: UInt32 = 0, produced: UInt32 = 0, done: Int32 = 0
            let status = tributary_inflate_run(state, input.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset,
                                               UInt32(input.count - offset), output.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                               capacity, &consumed, &produced, &done)
            guard status >= ISAL_DECOMP_OK else { throw Failure.corrupt(Self.describe(status)) }
            offset += Int(consumed)
            if produced > 0 {
                try sink(UnsafeRawBufferPointer(start: output.baseAddress, count: Int(produced)))
            }
            if done != 0 {
                atMemberBoundary = true
            } else if offset == input.count && produced < capacity {
                // All input taken and nothing held back: wait for more.
                return
            }
        }
    }

    /// Call at end of input.
    public func finish() throws {
        guard sawInput && atMemberBoundary else { throw Failure.truncated }
    }

    private static func describe(_ status: Int32) -> String {
        switch status {
        case ISAL_INVALID_BLOCK: return "invalid deflate block"
        case ISAL_INVALID_SYMBOL: return "invalid deflate symbol"
        case ISAL_INVALID_LOOKBACK: return "invalid back-reference distance"
        case ISAL_INVALID_WRAPPER: return "not a gzip header"
        case ISAL_UNSUPPORTED_METHOD: return "unsupported compression method"
        case ISAL_INCORRECT_CHECKSUM: return "CRC-32 mismatch"
        default: return "igzip status \(status)"
        }
    }
}
