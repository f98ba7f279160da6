import Foundation

/// Runs a command as a child process via posix_spawn, output to files (a full pipe can never
/// stall it), stdin from /dev/null. Foundation's Process is avoided: on Linux its waitUntilExit
/// can miss the child's exit.
final class TestProcess: @unchecked Sendable {
    struct Outcome: Sendable {
        var status: Int32
        var signalled: Bool
        var standardOutput: String
        var standardError: String
    }

    private(set) var pid: pid_t = 0
    private let executable: String
    private let arguments: [String]
    private let environment: [String: String]
    private let outputPath: String
    private let errorPath: String

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) {
        let base = NSTemporaryDirectory() + "tributary-process-\(UUID().uuidString)"
        outputPath = base + ".out"
        errorPath = base + ".err"
        self.executable = executable
        self.arguments = arguments
        // A crash prints the crashed thread's whole stack and little else: what a failing test
        // keeps of the process's standard error is its end.
        let backtrace = ["SWIFT_BACKTRACE": "enable=yes,threads=crashed,registers=none,images=none,limit=48"]
        self.environment = backtrace.merging(ProcessInfo.processInfo.environment) { $1 }.merging(environment) { $1 }
    }

    func start() throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        // The test runner blocks some signals; a child inheriting that mask would ignore SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else { throw TestFailure("cannot start \(executable): \(String(cString: strerror(status)))") }
    }

    func kill(signal: Int32 = SIGKILL) { Glibc.kill(pid, signal) }

    /// Whether it has exited, without collecting its status (a zombie, for /proc).
    var hasExited: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        return stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") ?? true
    }

    /// What the process has written to standard output so far.
    func outputSoFar() -> String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// What the process has written to standard error so far (its log).
    func errorSoFar() -> String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    /// Polls for the exit without blocking a cooperative thread.
    func wait() async -> Outcome {
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return outcome(status)
    }

    /// Blocking wait, for the one-time cluster setup.
    func waitBlocking() -> Outcome {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return outcome(status)
    }

    private func outcome(_ status: Int32) -> Outcome {
        defer {
            try? FileManager.default.removeItem(atPath: outputPath)
            try? FileManager.default.removeItem(atPath: errorPath)
        }
        let signalled = (status & 0x7f) != 0
        return Outcome(status: signalled ? -(status & 0x7f) : (status >> 8) & 0xff, signalled: signalled,
                       standardOutput: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "",
                       standardError: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> Outcome {
        let process = TestProcess(executable, arguments, environment: environment)
        try process.start()
        return await process.wait()
    }

    /// A helper script of deploy/tools (the OCI emulator, the TCP proxy) run by the system's python3.
    static func python(_ script: String, _ arguments: [String]) -> TestProcess {
        let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "/usr/local/bin/python3"
        return TestProcess(python, [Paths.repository + "/deploy/tools/" + script] + arguments)
    }

    /// The first line of standard output `parse` accepts, once the process has printed it; the
    /// process is killed and its error output thrown if it has not within `seconds`.
    func firstLine<Value>(seconds: Int = 20, _ what: String, _ parse: (Substring) -> Value?) async throws -> Value {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let value = outputSoFar().split(separator: "\n").lazy.compactMap(parse).first { return value }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill()
        throw TestFailure("\(what) did not start: \(await wait().standardError)")
    }
}
