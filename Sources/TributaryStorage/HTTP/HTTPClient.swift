import Foundation

/// HTTP(S) over libcurl with a bounded pool of kept-alive connections, each on its own thread.
/// TLS peers are always verified (curl's default, never turned off).
public final class HTTPClient: Sendable {
    public struct Settings: Sendable {
        /// Concurrent requests, and so connections and threads.
        public var connections: Int = 4
        public var connectTimeoutMilliseconds: Int = 10_000
        /// A transfer slower than 1 KiB/s for this long is abandoned (and may be retried).
        public var stallTimeoutSeconds: Int = 30

        public init() {}
    }

    private let pool: ConnectionPool

    public init(settings: Settings = .init()) {
        pool = ConnectionPool(settings: settings)
    }

    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let connection = await pool.checkOut()
        do {
            let response = try await connection.perform(request)
            await pool.checkIn(connection)
            return response
        } catch {
            await pool.checkIn(connection)
            throw error
        }
    }
}

private actor ConnectionPool {
    private let settings: HTTPClient.Settings
    private var idle: [CurlConnection] = []
    private var created = 0
    private var waiting: [CheckedContinuation<CurlConnection, Never>] = []

    init(settings: HTTPClient.Settings) {
        self.settings = settings
    }

    func checkOut() async -> CurlConnection {
        if let connection = idle.popLast() { return connection }
        if created < max(1, settings.connections) {
            created += 1
            return CurlConnection(name: "http \(created)", settings: settings)
        }
        return await withCheckedContinuation { waiting.append($0) }
    }

    func checkIn(_ connection: CurlConnection) {
        if waiting.isEmpty {
            idle.append(connection)
        } else {
            waiting.removeFirst().resume(returning: connection)
        }
    }
}
