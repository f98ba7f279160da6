import ArgumentParser
import Foundation
import Logging
import TributaryCore
import TributaryServices
import TributaryStorage

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration directory (default: $TRIBUTARY_CONFIG or ./slots).")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level = .info

    var configurationDirectory: String {
        config ?? ProcessInfo.processInfo.environment["TRIBUTARY_CONFIG"] ?? "slots"
    }

    func loadConfiguration() throws -> Configuration {
        let configuration = try ConfigurationLoader.load(directory: configurationDirectory)
        WorkDirectoryBudget.shared.configure(directory: configuration.target.workDirectory, maximum: configuration.target.workMaximum)
        return configuration
    }

    /// The staging store tributary.yaml names, logging for `command`.
    func openStagingStore(_ target: TargetConfiguration, command: String) throws -> any StagingStore {
        try StagingStores.open(target, logger: makeLogger(command))
    }

    /// The logger of a subcommand: every line carries `command`, so one filter finds a stage's lines.
    func makeLogger(_ command: String) -> Logger {
        LoggingSystem.bootstrapOnce(level: logLevel)
        var logger = Logger(label: "tributary")
        logger[metadataKey: LogKey.command] = .string(command)
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// A duration on the command line as in the configuration: `90` (seconds), `500ms`, `2m`, `1h`.
extension Duration: @retroactive ExpressibleByArgument {
    public init?(argument: String) {
        guard let duration = Quantity.duration(argument) else { return nil }
        self = duration
    }
}

extension LoggingSystem {
    private static let bootstrapped = BootstrapFlag()

    static func bootstrapOnce(level: Logger.Level) {
        guard bootstrapped.claim() else { return }
        bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

final class BootstrapFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var claimed = false

    func claim() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if claimed { return false }
        claimed = true
        return true
    }
}

/// Runs a subcommand body and turns failures into one line on stderr and an exit code: the
/// error's own (2 for configuration and usage problems), 1 for everything else.
enum CommandRunner {
    static func run(_ body: () async throws -> Void) async throws {
        // Staged rows, manifests, spills and parts hold the sources' data: only this user reads
        // them (files 0600, directories 0700), whatever umask the process was started with.
        umask(0o077)
        do {
            try await body()
        } catch let exit as ExitCode {
            throw exit
        } catch let error as TributaryError {
            printError(error.code == .configuration ? "configuration: \(error)" : "\(error)")
            throw ExitCode(error.exitCode)
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data("tributary: error: \(message)\n".utf8))
    }
}
