import Foundation
import Logging
import ServiceLifecycle
import TributaryCore
import TributaryServices

/// systemd's notify protocol (sd_notify(3)): datagrams of `KEY=value` lines to the socket named in
/// `$NOTIFY_SOCKET` (a path, or `@` for the abstract namespace). As a part of `tributary run`:
/// `READY=1` once every part has been ready (slots taken, applier lock held), then `WATCHDOG=1` every
/// half `$WATCHDOG_USEC` while no part is stalled (so systemd restarts a hung process), `STATUS=` lines,
/// and `STOPPING=1` as soon as a graceful stop begins.
struct SystemdNotifier: Service {
    let socketPath: String
    let watchdogInterval: Duration?
    let liveness: Liveness
    let logger: Logger

    /// Nil when the process was not started by systemd with `Type=notify`.
    static func fromEnvironment(liveness: Liveness, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment)
        -> SystemdNotifier? {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        var interval: Duration?
        if let micros = environment["WATCHDOG_USEC"].flatMap(Int.init), micros > 0,
           environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == getpid() }) ?? true {
            interval = .microseconds(micros / 2)
        }
        return SystemdNotifier(socketPath: path, watchdogInterval: interval, liveness: liveness, logger: logger)
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            var readySent = false
            var lastWatchdog = ContinuousClock.now
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                if !readySent && liveness.wasReady {
                    send("READY=1\nSTATUS=running: every part started")
                    readySent = true
                }
                // Pings from READY=1 on: until then TimeoutStartSec is what bounds the start.
                if readySent, let interval = watchdogInterval, ContinuousClock.now - lastWatchdog >= interval {
                    let stalled = liveness.stalled
                    if stalled.isEmpty {
                        send("WATCHDOG=1")
                    } else {
                        // No ping: systemd restarts the process once WatchdogSec passes.
                        logger.error("parts stalled, watchdog not fed", metadata: [LogKey.parts: .string(stalled.joined(separator: ","))])
                        send("STATUS=stalled: \(stalled.joined(separator: ", "))")
                    }
                    lastWatchdog = .now
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
        } onGracefulShutdown: {
            send("STOPPING=1\nSTATUS=stopping: finishing the batches in hand")
        }
    }

    func send(_ message: String) {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        // An abstract socket's name starts with a NUL byte where the path says "@".
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            for (index, byte) in path.enumerated() { bytes[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let sent = Array(message.utf8).withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(descriptor, bytes.baseAddress, bytes.count, 0, $0, length) }
            }
        }
        if sent < 0 { logger.debug("systemd notify failed", metadata: [LogKey.errno: .stringConvertible(errno)]) }
    }
}
