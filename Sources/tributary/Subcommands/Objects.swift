import ArgumentParser
import Foundation
import TributaryCore
import TributaryServices
import TributaryStorage

/// Looks into the OCI layer the configuration names, whichever store it is: list, copy in and out,
/// remove. Useful to inspect batches, and the same path every stage takes to the store.
struct Objects: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "objects",
        abstract: "List, upload, download or remove objects in the staging store (the OCI layer).",
        subcommands: [List.self, Put.self, Get.self, Remove.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List objects under a prefix, in key order.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Key prefix, e.g. qvp/cdc/.") var prefix = ""
        @Option(help: "Only keys after this one.") var after: String?

        func run() async throws {
            try await CommandRunner.run {
                let store = try StagingStores.open(try global.loadConfiguration().target, logger: global.makeLogger("objects"))
                for object in try await store.list(prefix: prefix, startAfter: after) {
                    print("\(object.size)\t\(object.key)")
                }
            }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Upload a local file as KEY (in parts when large); the file is kept.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Local file.") var file: String
        @Argument(help: "Object key.") var key: String

        func run() async throws {
            try await CommandRunner.run {
                let configuration = try global.loadConfiguration()
                let store = try StagingStores.open(configuration.target, logger: global.makeLogger("objects"))
                // put(file:) consumes its file: hand it a hard link (or copy) so the operator's file stays.
                try LocalFiles.makeDirectory(configuration.target.workDirectory)
                let staged = configuration.target.workDirectory + "/put-\(UUID().uuidString)"
                if link(file, staged) != 0 { try FileManager.default.copyItem(atPath: file, toPath: staged) }
                let started = ContinuousClock.now
                do {
                    try await store.put(key: key, file: staged)
                } catch {
                    LocalFiles.remove(staged)
                    throw error
                }
                let size = try await store.head(key: key)?.size ?? 0
                print("uploaded \(key): \(size) bytes in \(started.duration(to: .now))")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download KEY to a local file.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Object key.") var key: String
        @Argument(help: "Local file to write.") var file: String

        func run() async throws {
            try await CommandRunner.run {
                let store = try StagingStores.open(try global.loadConfiguration().target, logger: global.makeLogger("objects"))
                let started = ContinuousClock.now
                let local = try await store.fetch(key: key)
                defer { local.release() }
                if local.isTemporary {
                    LocalFiles.remove(file)
                    guard rename(local.path, file) == 0 else { throw StorageError.io(operation: "move the download to", path: file, errno: errno) }
                } else {
                    LocalFiles.remove(file)
                    try FileManager.default.copyItem(atPath: local.path, toPath: file)
                }
                print("downloaded \(key) to \(file) in \(started.duration(to: .now))")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove objects.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Object keys.") var keys: [String]

        func run() async throws {
            try await CommandRunner.run {
                let store = try StagingStores.open(try global.loadConfiguration().target, logger: global.makeLogger("objects"))
                for key in keys {
                    try await store.delete(key: key)
                    print("removed \(key)")
                }
            }
        }
    }
}
