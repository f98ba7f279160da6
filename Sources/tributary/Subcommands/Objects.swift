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
                let store = try global.openStagingStore(try global.loadConfiguration().target, command: "objects")
                for object in try await store.list(prefix: prefix, startAfter: after) {
                    print("\(object.size)\t\(object.key)")
                }
            }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Upload local files (FILE KEY pairs), in parts when large; the files are kept.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "FILE KEY [FILE KEY ...]") var pairs: [String]

        func validate() throws {
            if pairs.isEmpty || pairs.count % 2 != 0 { throw ValidationError("give FILE KEY pairs") }
        }

        func run() async throws {
            try await CommandRunner.run {
                let configuration = try global.loadConfiguration()
                let store = try global.openStagingStore(configuration.target, command: "objects")
                let started = ContinuousClock.now
                var total = 0
                for index in stride(from: 0, to: pairs.count, by: 2) {
                    let (file, key) = (pairs[index], pairs[index + 1])
                    let size = try await store.upload(keeping: file, as: key, scratchDirectory: configuration.target.workDirectory)
                    total += size
                    print("uploaded \(key): \(size) bytes")
                }
                print("uploaded \(pairs.count / 2) objects, \(total) bytes in \(Format.duration((ContinuousClock.now - started).seconds))")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download objects to local files (KEY FILE pairs).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "KEY FILE [KEY FILE ...]") var pairs: [String]

        func validate() throws {
            if pairs.isEmpty || pairs.count % 2 != 0 { throw ValidationError("give KEY FILE pairs") }
        }

        func run() async throws {
            try await CommandRunner.run {
                let store = try global.openStagingStore(try global.loadConfiguration().target, command: "objects")
                let started = ContinuousClock.now
                for index in stride(from: 0, to: pairs.count, by: 2) {
                    let (key, file) = (pairs[index], pairs[index + 1])
                    try await store.download(key, to: file)
                    print("downloaded \(key) to \(file)")
                }
                print("downloaded \(pairs.count / 2) objects in \(Format.duration((ContinuousClock.now - started).seconds))")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove objects.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Object keys.") var keys: [String]

        func run() async throws {
            try await CommandRunner.run {
                let store = try global.openStagingStore(try global.loadConfiguration().target, command: "objects")
                for key in keys {
                    try await store.delete(key: key)
                    print("removed \(key)")
                }
            }
        }
    }
}
