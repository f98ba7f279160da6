import CZlib

/// Streaming gzip compression: bytes in, gzip bytes out through `sink`. Pure computation; the caller
/// decides where the output goes.
public final class GzipEncoder {
    /// Heap-allocated: zlib keeps a pointer back to it, so it must never move.
    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    private var output: [UInt8]
    private var finished = false

    public init(level: Int) {
        output = [UInt8](repeating: 0, count: 256 << 10)
        stream.initialize(to: z_stream())
        // windowBits 15 + 16 asks zlib for a gzip header and trailer.
        let status = deflateInit2_(stream, Int32(level), Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                                   zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "deflateInit2 failed: \(status)")
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    public func compress(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard input.count > 0 else { return }
        try run(input, flush: Z_NO_FLUSH, sink: sink)
    }

    /// Writes the trailer. No input may follow.
    public func finish(sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        precondition(!finished)
        finished = true
        try run(UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH, sink: sink)
    }

    private func run(_ input: UnsafeRawBufferPointer, flush: Int32, sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        let capacity = output.count
        while true {
            let (status, produced): (Int32, Int) = output.withUnsafeMutableBytes { buffer in
                stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(capacity)
                let status = deflate(stream, flush)
                return (status, capacity - Int(stream.pointee.avail_out))
            }
            precondition(status != Z_STREAM_ERROR, "deflate stream error")
            if produced > 0 {
                try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
            }
            if flush == Z_FINISH {
                if status == Z_STREAM_END { return }
            } else if stream.pointee.avail_in == 0 && stream.pointee.avail_out != 0 {
                return
            }
        }
    }
}
