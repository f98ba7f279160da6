import Foundation
import Testing
import TributaryCore
import TributaryTestSupport
@testable import TributaryStorage

/// The local staging store lists as an object store does (byte order, a strict start and end),
/// and a listing after the applied position does not walk what retention keeps before it.
struct FilesystemStagingStoreTests {
    @Test func listingMatchesTheKeysItWantsInByteOrderWhateverTheBounds() async throws {
        let root = NSTemporaryDirectory() + "tributary-fs-store-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try FilesystemStagingStore(root: root)
        // Names that sort across the "/" of a directory: "-" and "." sort before it, "~" after.
        var keys: [String] = []
        for batch in ["0000000000000010", "0000000000000020", "0000000000000020-x", "0000000000000030"] {
            for file in ["manifest.json", "public.a.csv.gz", "public.a~1.csv.gz", "public.b.csv.gz"] { keys.append("qvp/cdc/\(batch)/\(file)") }
        }
        keys += ["qvp/cdc.json", "qvp/snapshot/0000000000000001/manifest.json", "svp/cdc/0000000000000010/manifest.json", "top"]
        for key in keys { try await store.put(key: key, bytes: Array(key.utf8)) }
        let sorted = keys.sorted { FilesystemStagingStore.precedes($0, $1) }
        var generator = SeededGenerator(seed: 31)
        let bounds = [nil, "qvp/cdc/0000000000000020/~", "qvp/cdc/0000000000000020/", "qvp/cdc/0000000000000020", "qvp/cdc/0000000000000020-x/public.a.csv.gz",
                      "qvp/cdc/", "qvp/cdc/0000000000000010/public.a~1.csv.gz", "qvp", "r", "qvp/cdc/0000000000000030/~"]
        for prefix in ["", "qvp/", "qvp/cdc/", "qvp/cdc/0000000000000020", "qvp/cdc/0000000000000020/", "svp/", "qvp/cd"] {
            for _ in 0..<25 {
                let startAfter = bounds.randomElement(using: &generator)!
                let endBefore = bounds.randomElement(using: &generator)!
                let expected = sorted.filter { key in
                    key.hasPrefix(prefix) && (startAfter.map { FilesystemStagingStore.precedes($0, key) } ?? true)
                        && (endBefore.map { FilesystemStagingStore.precedes(key, $0) } ?? true)
                }
                let listed = try await store.list(prefix: prefix, startAfter: startAfter, endBefore: endBefore)
                #expect(listed.map(\.key) == expected, "prefix \(prefix), after \(startAfter ?? "-"), before \(endBefore ?? "-")")
                #expect(listed.allSatisfy { $0.size == $0.key.utf8.count })
            }
        }
    }

    /// A batch's files, written without fsync, go in at once: each under its key (directories
    /// made as needed), the local files consumed; fetched back in the keys' order. A file that
    /// cannot be synced fails the call before any is renamed into place.
    @Test func aBatchsFilesGoInTogether() async throws {
        let root = NSTemporaryDirectory() + "tributary-fs-store-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try FilesystemStagingStore(root: root)
        var files: [(key: String, file: String)] = []
        for index in 0..<40 {
            let path = root + "/.incoming/local-\(index)"
            let output = try FileOutput(creating: path)
            try output.write(Array("contents \(index)".utf8))
            try output.close()
            files.append((key: "qvp/cdc/\(index < 30 ? "0000000000000010" : "0000000000000020")/public.t_\(index).csv.gz", file: path))
        }
        try await store.put(files: files)
        #expect(files.allSatisfy { !FileManager.default.fileExists(atPath: $0.file) })
        let fetched = try await store.fetch(keys: files.map(\.key).reversed())
        #expect(try fetched.map { String(decoding: try FileInput.readAll($0.path), as: UTF8.self) } == (0..<40).reversed().map { "contents \($0)" })
        #expect(try await store.list(prefix: "qvp/cdc/0000000000000020/", startAfter: nil).count == 10)

        let present = root + "/.incoming/present"
        try FileOutput(creating: present).close()
        let missing = [(key: "qvp/cdc/0000000000000030/public.a.csv.gz", file: present),
                       (key: "qvp/cdc/0000000000000030/public.b.csv.gz", file: root + "/.incoming/absent")]
        // As the replicator calls it: through the protocol, not the default of its extension.
        let erased: any StagingStore = store
        await #expect(throws: StorageError.self) { try await erased.put(files: missing) }
        #expect(try await store.list(prefix: "qvp/cdc/0000000000000030/", startAfter: nil).isEmpty)
        #expect(throws: StorageError.self) { try LocalFiles.syncAll([root + "/.incoming/absent", root + "/.incoming/gone"]) }
    }

    /// What the applier and `status` list, the batches after the applied one, opens none of the
    /// batch directories before it; gc's listing, bounded by an end, none after it.
    @Test func aDirectoryWhollyOutsideTheBoundsIsNotOpened() {
        let after = FilesystemStagingStore.ListingBounds(prefix: "qvp/cdc/", startAfter: "qvp/cdc/0000000000000020/~", endBefore: nil)
        #expect(!after.mayHoldKeys(under: "qvp/cdc/0000000000000010/"))
        #expect(after.mayHoldKeys(under: "qvp/cdc/0000000000000030/"))
        #expect(!after.mayHoldKeys(under: "svp/"), "another prefix")
        let inside = FilesystemStagingStore.ListingBounds(prefix: "qvp/cdc/", startAfter: "qvp/cdc/0000000000000020/public.a.csv.gz", endBefore: nil)
        #expect(inside.mayHoldKeys(under: "qvp/cdc/0000000000000020/"), "the start is inside it")
        let before = FilesystemStagingStore.ListingBounds(prefix: "qvp/cdc/", startAfter: nil, endBefore: "qvp/cdc/0000000000000020/")
        #expect(before.mayHoldKeys(under: "qvp/cdc/0000000000000010/"))
        #expect(!before.mayHoldKeys(under: "qvp/cdc/0000000000000020/"))
        #expect(!before.mayHoldKeys(under: "qvp/cdc/0000000000000030/"))
        #expect(before.mayHoldKeys(under: "qvp/"), "leads to the prefix")
    }
}
