import ArgumentParser
import Foundation
import TributaryServices

struct DropSlot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drop-slot",
        abstract: "After cutover: drop drained sources' replication slots, so the sources stop retaining WAL for them.",
        discussion: "Refuses a source that is not drained (--force overrides). The slot's position is lost: only a new snapshot can restart replication.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var selection: SourceSelection

    @Flag(help: "Drop the publication too, when tributary created it (create_publication: true).")
    var publication = false

    @Flag(help: "Drop even when the source is not drained.")
    var force = false

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let operations = SourceOperations(endpoints: Endpoints(configuration, command: "drop-slot"))
            for source in try selection.resolve(configuration) {
                let outcome = try await operations.dropSlot(source, publication: publication, force: force)
                switch outcome.slot {
                case .dropped(let slot): print("\(outcome.source): dropped replication slot \(slot)")
                case .absent(let slot): print("\(outcome.source): slot \(slot) does not exist: nothing to drop")
                }
                if let publication = outcome.droppedPublication { print("\(outcome.source): dropped publication \(publication)") }
            }
        }
    }
}
