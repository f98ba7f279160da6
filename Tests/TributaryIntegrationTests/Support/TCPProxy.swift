import Foundation

/// deploy/tools/tcp-proxy.py in front of one server: tributary connects through it, and `cut()` drops
/// every connection passing through at once, as a failing network would. Stopped when released.
final class TCPProxy: @unchecked Sendable {
    let port: Int
    private let process: TestProcess

    private init(port: Int, process: TestProcess) {
        self.port = port
        self.process = process
    }

    deinit {
        process.kill(signal: SIGTERM)
        _ = process.waitBlocking()
    }

    static func start(to serverPort: Int) async throws -> TCPProxy {
        let process = TestProcess.python("tcp-proxy.py", ["--to", String(serverPort)])
        try process.start()
        return TCPProxy(port: try await process.firstLine("the TCP proxy") { Int($0) }, process: process)
    }

    /// Resets every connection through the proxy; new ones are accepted at once.
    func cut() { process.kill(signal: SIGUSR1) }

    /// `conninfo` with its port replaced by the proxy's.
    func route(_ conninfo: String) -> String {
        conninfo.split(separator: " ").map { $0.hasPrefix("port=") ? "port=\(port)" : String($0) }.joined(separator: " ")
    }
}
