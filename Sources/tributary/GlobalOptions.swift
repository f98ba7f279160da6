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

    /// Reads `source`'s configuration again from the directory, as it is then (nil when it does
    /// not load): how a running replicator learns of a table added to it.
    func refreshSource(named source: String) -> @Sendable () -> SourceConfiguration? {
        let directory = configurationDirectory
        return { (try? ConfigurationLoader.load(directory: directory))?.sources.first { $0.name == source } }
    }

    /// The staging store tributary.yaml names, logging for `command`.
    func openStagingStore(_ target: TargetConfiguration, command: String) throws -> any StagingStore {
        try StagingStores.open(target, logger: makeLogger(command))
    }

    /// The logger of a subcommand: every line carries `command`, so one filter finds a stage's lines.
    func makeLogger(_ command: String) -> Logger {
        LoggingSystem.bootstrapOnce(level: logLevel)
        var logger = Logger(label: "tributary")
        logger[metadataKey: "command"] = .string(command)
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

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

/// Runs a subcommand body and turns failures into one line on stderr and an exit code:
/// 2 for configuration and usage problems, 1 for everything else.
enum CommandRunner {
    static func run(_ body: () async throws -> Void) async throws {
        // Staged rows, manifests, spills and parts hold the sources' data: only this user reads
        // them (files 0600, directories 0700), whatever umask the process was started with.
        umask(0o077)
        do {
            try await body()
        } catch let exit as ExitCode {
            throw exit
        } catch let error as ConfigurationError {
            printError("configuration: \(error)")
            throw ExitCode(2)
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data("tributary: error: \(message)\n".utf8))
    }
}
