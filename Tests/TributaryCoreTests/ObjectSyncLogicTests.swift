import Testing
import TributaryCore

/// The object sync's pure parts: the listing diff's decision per name, the checkpoint a killed pass
/// resumes from, the name patterns, and the `objects:` and `sync:` configuration.
@Suite struct ObjectSyncLogicTests {
    static func entry(_ name: String, _ size: Int64 = 10, md5: String? = "AAAA", etag: String? = "e1") -> ObjectEntry {
        ObjectEntry(name: name, size: size, md5: md5, etag: etag)
    }

    @Test func theDiffCopiesWhatOnlyTheSourceHasAndReportsWhatOnlyTheTargetHas() {
        #expect(ObjectDiff.decide(source: Self.entry("a"), target: nil, record: nil) == .copy)
        #expect(ObjectDiff.decide(source: nil, target: Self.entry("a"), record: nil) == .extra)
    }

    @Test func contentMD5sOnBothSidesDecideAndADifferentSizeAlwaysReplaces() {
        #expect(ObjectDiff.decide(source: Self.entry("a"), target: Self.entry("a", etag: "other"), record: nil) == .unchanged)
        #expect(ObjectDiff.decide(source: Self.entry("a", md5: "AAAA"), target: Self.entry("a", md5: "BBBB"), record: nil) == .replace)
        #expect(ObjectDiff.decide(source: Self.entry("a", 10), target: Self.entry("a", 11), record: nil) == .replace)
    }

    @Test func aMultipartMD5IsNoContentHashOnlyTheCopyRecordCanVouchForIt() {
        let source = Self.entry("big", 100, md5: "XXXX-3", etag: "s1")
        let target = Self.entry("big", 100, md5: "YYYY-7", etag: "t1")
        #expect(!source.hasContentMD5 && Self.entry("a").hasContentMD5)
        #expect(ObjectDiff.decide(source: source, target: target, record: nil) == .replace, "never proven the same")
        let record = CopyRecord(name: "big", sourceSize: 100, sourceMD5: "XXXX-3", sourceETag: "s1", targetETag: "t1")
        #expect(ObjectDiff.decide(source: source, target: target, record: record) == .unchanged)
        // The source changed since (a new ETag), or the target was overwritten by someone else.
        #expect(ObjectDiff.decide(source: Self.entry("big", 100, md5: "XXXX-3", etag: "s2"), target: target, record: record) == .replace)
        #expect(ObjectDiff.decide(source: source, target: Self.entry("big", 100, md5: "YYYY-7", etag: "t2"), record: record) == .replace)
        // A single-part source copied into a multipart target: its MD5 must be the recorded one.
        let single = Self.entry("big", 100, md5: "CCCC", etag: "s9")
        let copied = CopyRecord(name: "big", sourceSize: 100, sourceMD5: "CCCC", sourceETag: "s9", targetETag: "t1")
        #expect(ObjectDiff.decide(source: single, target: target, record: copied) == .unchanged)
        #expect(ObjectDiff.decide(source: Self.entry("big", 100, md5: "DDDD", etag: "s9"), target: target, record: copied) == .replace)
        let noTargetETag = CopyRecord(name: "big", sourceSize: 100, sourceMD5: "XXXX-3", sourceETag: "s1", targetETag: nil)
        #expect(ObjectDiff.decide(source: source, target: target, record: noTargetETag) == .replace)
    }

    @Test func theCheckpointFollowsCopiesFinishingOutOfOrderAndNeverPassesOneInFlight() {
        var checkpoint = SyncCheckpoint(resumingAt: "a")
        #expect(checkpoint.position == "a")
        checkpoint.started("b")
        checkpoint.skipped("c")
        checkpoint.started("d")
        #expect(checkpoint.inFlight == 2)
        #expect(checkpoint.position == "a", "b is still copying")
        checkpoint.finished("d")
        #expect(checkpoint.position == "a")
        checkpoint.finished("b")
        #expect(checkpoint.position == "d")
        checkpoint.skipped("e")
        #expect(checkpoint.position == "e")
        #expect(SyncCheckpoint().position == nil)
    }

    @Test(arguments: [
        ("*.pdf", "scan.pdf", true), ("*.pdf", "2026/scan.pdf", false), ("**/*.pdf", "2026/01/scan.pdf", true),
        ("**/*.pdf", "scan.pdf", true), ("2026/**", "2026/01/a", true), ("2026/**", "2027/01/a", false),
        ("scan_?.pdf", "scan_1.pdf", true), ("scan_?.pdf", "scan_12.pdf", false), ("a?b", "a/b", false),
        ("tmp/*", "tmp/x", true), ("tmp/*", "tmp/x/y", false), ("", "", true), ("x", "", false),
    ])
    func namePatterns(_ pattern: String, _ name: String, _ matches: Bool) {
        #expect(NamePattern.matches(pattern, name) == matches, "\(pattern) on \(name)")
    }

    @Test func aMappingSelectsByIncludeThenExcludeAndNeverItsTrash() {
        var mapping = ObjectMapping(id: "qvp:docs", source: ObjectLocation(store: .directory("/b"), prefix: ""),
                                    target: ObjectLocation(store: .directory("/t"), prefix: ""), include: ["**/*.pdf"], exclude: ["draft/**"])
        mapping.deletes.trashPrefix = "trash/"
        #expect(mapping.selects("2026/a.pdf"))
        #expect(!mapping.selects("2026/a.txt"))
        #expect(!mapping.selects("draft/a.pdf"))
        #expect(!mapping.selects("trash/a.pdf"))
    }

    let target = ConfigurationParser.File(name: "slots/tributary.yaml", text: """
        target:
          connection: "host=db"
        staging: ../staging
        sync:
          target: oci://ns/unipacc/files
          connections: 4
          interval: 10m
          part_size: 32MiB
        """)

    func source(_ objects: String) -> ConfigurationParser.File {
        .init(name: "slots/qvp.yaml", text: "connection: host=qvp\ntables:\n  - name: public.documents\n" + objects)
    }

    func parse(_ files: [ConfigurationParser.File]) throws -> Configuration {
        try ConfigurationParser.parse(files: files, directory: "/etc/tributary/slots", environment: [:])
    }

    @Test func syncSettingsAndMappingsParseWithTheirDefaultsAndTargets() throws {
        let configuration = try parse([target, source("""
            objects:
              - from: oci://ns/qvp-docs/scans
                include: "**/*.pdf"
                delete: true
                max_delete: 50
                trash: old
              - from: ../buckets/svp
                to: file:///srv/unipacc/svp
                to_profile: OTHER
            """)])
        let sync = configuration.target.sync
        #expect(sync.connections == 4 && sync.interval == .seconds(600) && sync.partSize == 32 << 20)
        #expect(sync.target == ObjectLocation(store: .oci(namespace: "ns", bucket: "unipacc"), prefix: "files/"))
        let mappings = configuration.sources[0].objects
        #expect(mappings.count == 2)
        #expect(mappings[0].id == "qvp:oci://ns/qvp-docs/scans/")
        // Without to: under the sync target, at <prefix><source>/<bucket>/<from prefix>.
        #expect(mappings[0].target == ObjectLocation(store: .oci(namespace: "ns", bucket: "unipacc"), prefix: "files/qvp/qvp-docs/scans/"))
        #expect(mappings[0].include == ["**/*.pdf"] && mappings[0].deletes.enabled && mappings[0].deletes.maximum == 50)
        #expect(mappings[0].deletes.trashPrefix == "old/")
        #expect(mappings[1].source.store == .directory("/etc/tributary/buckets/svp"))
        #expect(mappings[1].target.store == .directory("/srv/unipacc/svp") && mappings[1].target.access.profile == "OTHER")
        #expect(!mappings[1].deletes.enabled, "deletes are off by default")
    }

    @Test func badObjectsAndSyncSectionsAreErrorsNamingTheKey() {
        func problem(_ files: [ConfigurationParser.File]) -> String {
            do {
                _ = try parse(files)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        let noTarget = ConfigurationParser.File(name: "slots/tributary.yaml", text: "target:\n  connection: host=db\nstaging: ../staging\n")
        #expect(problem([noTarget, source("objects:\n  - from: oci://ns/docs\n")]).contains("no to: and no sync.target"))
        #expect(problem([target, source("objects:\n  - from: s3://bucket/x\n")]).contains("expected oci://<namespace>/<bucket>/<prefix>"))
        #expect(problem([target, source("objects:\n  - from: oci://ns/a\n    to: oci://ns/t/x\n  - from: oci://ns/b\n    to: oci://ns/t/x\n")])
                    .contains("another mapping writes to"))
        #expect(problem([target, source("objects:\n  - from: oci://ns/a\n    colour: red\n")]).contains("colour"))
        let smallParts = ConfigurationParser.File(name: "slots/tributary.yaml",
                                                  text: "target:\n  connection: host=db\nstaging: ../staging\nsync:\n  part_size: 64KiB\n")
        #expect(problem([smallParts, source("")]).contains("part_size: must be from 1MiB to 1GiB"))
        let badInterval = ConfigurationParser.File(name: "slots/tributary.yaml",
                                                   text: "target:\n  connection: host=db\nstaging: ../staging\nsync:\n  interval: soon\n")
        #expect(problem([badInterval, source("")]).contains("expected a duration"))
    }
}
