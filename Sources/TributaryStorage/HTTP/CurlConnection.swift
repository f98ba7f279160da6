import CCurl
import Foundation
import TributaryCore

/// One libcurl easy handle on its own thread. curl calls block, so they never run on the cooperative
/// pool; the handle keeps its connection (and TLS session) alive between requests, so consecutive
/// requests to one endpoint reuse it.
actor CurlConnection {
    private nonisolated let executor: ThreadExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private let handle: UnsafeMutableRawPointer
    private let settings: HTTPClient.Settings

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    init(name: String, settings: HTTPClient.Settings) {
        _ = Self.globalInit
        executor = ThreadExecutor(name: name)
        handle = curl_easy_init()
        self.settings = settings
    }

    isolated deinit {
        curl_easy_cleanup(handle)
        executor.shutdown()
    }

    func perform(_ request: HTTPRequest) throws -> HTTPResponse {
        // reset() clears options but keeps the live connection, which is the point of reusing the handle.
        curl_easy_reset(handle)
        let transfer = try Transfer(request: request)
        defer { transfer.close() }
        let unmanaged = Unmanaged.passRetained(transfer)
        defer { unmanaged.release() }

        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        // No "Expect: 100-continue" round trip before each upload; OCI answers errors after the body anyway.
        var lines = request.headers.map { "\($0.0): \($0.1)" } + ["Expect:"]
        if request.addsContentMD5 { lines.append("content-md5: \(try request.body.contentMD5())") }
        for line in lines {
            headerList = curl_slist_append(headerList, line)
        }
        configure(for: request, headers: headerList, context: unmanaged.toOpaque())
        transfer.handle = handle

        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let code = errorBuffer.withUnsafeMutableBufferPointer { buffer -> CURLcode in
            tributary_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, buffer.baseAddress)
            defer { tributary_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, nil) }
            return curl_easy_perform(handle)
        }
        if let failure = transfer.failure { throw failure }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw HTTPTransportError(code: Int(code.rawValue),
                                     message: detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail,
                                     endpoint: request.endpoint)
        }
        var status = 0
        tributary_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
        try transfer.finishFile()
        return HTTPResponse(status: status, headers: transfer.headers, body: transfer.body)
    }

    /// The handle's options for `request`; the callbacks reach the transfer through `context`.
    private func configure(for request: HTTPRequest, headers: UnsafeMutablePointer<curl_slist>?, context: UnsafeMutableRawPointer) {
        tributary_curl_set_string(handle, CURLOPT_URL, request.endpoint + request.pathAndQuery)
        // What was signed is what is sent: no "/./" or "%2F" rewriting.
        tributary_curl_set_long(handle, CURLOPT_PATH_AS_IS, 1)
        tributary_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        tributary_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, settings.connectTimeoutMilliseconds)
        // A transfer that moves under 1 KiB/s for this long has stalled: give up and let the caller retry.
        tributary_curl_set_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1024)
        tributary_curl_set_long(handle, CURLOPT_LOW_SPEED_TIME, settings.stallTimeoutSeconds)
        // Larger transfer buffers: fewer callbacks and write(2)s per GiB than curl's 16 KiB default.
        tributary_curl_set_long(handle, CURLOPT_BUFFERSIZE, 1 << 20)
        tributary_curl_set_long(handle, CURLOPT_UPLOAD_BUFFERSIZE, 2 << 20)
        tributary_curl_set_list(handle, CURLOPT_HTTPHEADER, headers)
        tributary_curl_set_pointer(handle, CURLOPT_WRITEDATA, context)
        tributary_curl_set_callback(handle, CURLOPT_WRITEFUNCTION, Transfer.receiveBody)
        tributary_curl_set_pointer(handle, CURLOPT_HEADERDATA, context)
        tributary_curl_set_callback(handle, CURLOPT_HEADERFUNCTION, Transfer.receiveHeader)
        switch request.method {
        case "HEAD":
            tributary_curl_set_long(handle, CURLOPT_NOBODY, 1)
        case "GET":
            tributary_curl_set_long(handle, CURLOPT_HTTPGET, 1)
        default:
            if case .empty = request.body {
                tributary_curl_set_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
            } else {
                // UPLOAD with a known size sends Content-Length and streams the body from the callback.
                tributary_curl_set_long(handle, CURLOPT_UPLOAD, 1)
                tributary_curl_set_offset(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body.length))
                tributary_curl_set_pointer(handle, CURLOPT_READDATA, context)
                tributary_curl_set_callback(handle, CURLOPT_READFUNCTION, Transfer.sendBody)
                tributary_curl_set_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
            }
        }
    }
}

/// The state of one request while curl runs it; the callbacks reach it through their context pointer.
private final class Transfer {
    let request: HTTPRequest
    var handle: UnsafeMutableRawPointer?
    var headers: [String: String] = [:]
    var body: [UInt8] = []
    var failure: (any Error)?
    private var output: FileOutput?
    private var input: FileInput?
    private var sent: Int64 = 0

    init(request: HTTPRequest) throws {
        self.request = request
        if case .file(let path, let offset, _) = request.body {
            let input = try FileInput(path: path)
            try input.seek(to: offset)
            self.input = input
        }
    }

    func close() {
        input = nil
        output = nil
    }

    func finishFile() throws {
        if let output {
            try output.close()
            self.output = nil
        } else if let file = request.responseFile, status == 200 || status == 206 {
            // An empty object never calls the body callback: the file must still exist.
            try FileOutput(creating: file).close()
        }
    }

    private var status: Int {
        var status = 0
        if let handle { tributary_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status) }
        return status
    }

    static let receiveBody: tributary_curl_io_callback = { buffer, size, count, context in
        let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
        let length = size * count
        let bytes = UnsafeRawBufferPointer(start: buffer, count: length)
        do {
            if let file = transfer.request.responseFile, (200..<300).contains(transfer.status) {
                if transfer.output == nil { transfer.output = try FileOutput(creating: file) }
                try transfer.output!.write(bytes)
            } else {
                transfer.body.append(contentsOf: bytes)
            }
            return length
        } catch {
            transfer.failure = error
            return 0
        }
    }

    static let receiveHeader: tributary_curl_io_callback = { buffer, size, count, context in
        let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
        let length = size * count
        let line = String(decoding: UnsafeRawBufferPointer(start: buffer, count: length), as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            // A new status line (after a 100 Continue, say): the headers so far were not the answer's.
            transfer.headers = [:]
        } else if let colon = line.firstIndex(of: ":") {
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            transfer.headers[name] = value
        }
        return length
    }

    static let sendBody: tributary_curl_io_callback = { buffer, size, count, context in
        let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
        let capacity = Int64(size * count)
        let remaining = transfer.request.body.length - transfer.sent
        let length = Int(min(capacity, remaining))
        guard length > 0, let buffer else { return 0 }
        switch transfer.request.body {
        case .empty:
            return 0
        case .bytes(let bytes):
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + Int(transfer.sent), byteCount: length)
            }
        case .file:
            do {
                let read = try transfer.input!.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: length))
                guard read > 0 else {
                    transfer.failure = StorageError.corrupt(key: transfer.request.pathAndQuery, reason: "the local file ended before the upload")
                    return Int(CURL_READFUNC_ABORT)
                }
                transfer.sent += Int64(read)
                return read
            } catch {
                transfer.failure = error
                return Int(CURL_READFUNC_ABORT)
            }
        }
        transfer.sent += Int64(length)
        return length
    }
}
