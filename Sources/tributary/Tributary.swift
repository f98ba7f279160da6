import ArgumentParser
import TributaryCore

/// The root command only lists the subcommands. A new one is a file in `Subcommands/` that parses
/// its options, calls one service of `TributaryServices` and prints what it did.
@main
struct Tributary: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tributary",
        abstract: "Change-data-capture replicator: QVP and SVP into Uni PACC through the OCI layer.",
        discussion: """
            Every stage is a subcommand that can run alone, run again without harm, and be chained:
              check → snapshot → replicate (per source) → apply → verify
            Configuration is read from --config DIR (default ./slots, or $TRIBUTARY_CONFIG).
            Exit codes: 0 done; 99 nothing to do (sync-objects: what Airflow takes as skipped); 1 failure;
            2 configuration or usage error.
            """,
        version: "tributary 1.0.0",
        subcommands: [Check.self, Snapshot.self, Replicate.self, Apply.self, Transform.self, SyncObjects.self, Run.self, Status.self, Pause.self, Resume.self, Drain.self,
                      DropSlot.self, Verify.self, Objects.self, Collect.self]
    )

    /// ArgumentParser's own `main`, after the one process-wide setting that must come first.
    static func main() async {
        CryptoLibrary.keepStateUntilExit()
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
