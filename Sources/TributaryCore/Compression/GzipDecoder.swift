import CZlib

/// Streaming gzip decompression. `finish()` throws when the stream ended early, so a truncated
/// object is never mistaken for a complete one.
public final class GzipDecoder {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case corrupt(String)
        case truncated
        case trailingData

        public var description: String {
            switch self {
            case .corrupt(let message): return "not valid gzip data (\(message))"
            case .truncated: return "gzip data ends before its trailer: the object is truncated"
            case .trailingData: return "data follows the end of the gzip stream"
            }
        }
    }

    /// Heap-allocated: zlib keeps a pointer back to it, so it must never move.
    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    private var output: [UInt8]
    private var ended = false

    public init() {
        output = [UInt8](repeating: 0, count: 256 << 10)
        stream.initialize(to: z_stream())
        let status = inflateInit2_(stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "inflateInit2 failed: \(status)")
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    public func decompress(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard input.count > 0 else { return }
        guard !ended else { throw Failure.trailingData }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        let capacity = output.count
        while stream.pointee.avail_in > 0 || stream.pointee.avail_out == 0 {
            let (status, produced): (Int32, Int) = output.withUnsafeMutableBytes { buffer in
                stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(capacity)
                let status = inflate(stream, Z_NO_FLUSH)
                return (status, capacity - Int(stream.pointee.avail_out))
            }
            if produced > 0 {
                try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
            }
            switch status {
            case Z_STREAM_END:
                ended = true
                if stream.pointee.avail_in > 0 { throw Failure.trailingData }
                return
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                if stream.pointee.avail_in == 0 { return }
                continue
            default:
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                throw Failure.corrupt(message)
            }
        }
    }

    /// Call at end of input.
    public func finish() throws {
        guard ended else { throw Failure.truncated }
    }
}
