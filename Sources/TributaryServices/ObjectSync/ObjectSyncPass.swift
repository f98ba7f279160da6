import Foundation
import Logging
import TributaryCore
import TributaryStorage

/// One pass of one mapping (DESIGN.md §4c): the source and target listings, both sorted by name
/// and read a page at a time, merge-joined with what was recorded of earlier copies; what is new
/// or changed is copied (`connections` at a time), what only the target has is noted, and deleted
/// at the end when the policy allows and nothing failed. Memory stays flat whatever the number of
/// objects: three pages and the copies in flight. The position is checkpointed, so a killed pass
/// resumes where it was instead of listing from the start.
struct ObjectSyncPass {
    struct Report: Sendable {
        var mapping: ObjectMapping
        /// A killed pass was carried on (from `resumedAfter`, or from the start when it was killed
        /// before its first checkpoint).
        var resumed = false
        var resumedAfter: String?
        var listed: Int64 = 0
        var copied: Int64 = 0
        var copiedBytes: Int64 = 0
        var replaced: Int64 = 0
        var failed: Int64 = 0
        var failures: [String] = []
        var extra: Int64 = 0
        var extraBytes: Int64 = 0
        var deleted: Int64 = 0
        /// Why the extra objects were not deleted, when they were not.
        var deletesHeld: String?
        /// A dry run's (or verify's) findings, the first names of each kind.
        var toCopy: [String] = [], toReplace: [String] = [], toDelete: [String] = []
        var toCopyBytes: Int64 = 0, toReplaceBytes: Int64 = 0
        var seconds = 0.0

        var changedSomething: Bool { copied + replaced + deleted > 0 }
        static let namesShown = 50
    }

    let mapping: ObjectMapping
    let source: any ObjectStore
    let target: any ObjectStore
    let settings: ObjectSyncSettings
    let control: ControlStore
    let logger: Logger
    let progress: ObjectSyncProgress?
    let stop: StopSignal

    /// Copy records are read a page at a time, like the listings.
    static let recordPage = 1_000

    /// - Parameter dryRun: list and decide only: nothing copied, deleted or recorded.
    func run(dryRun: Bool) async throws -> Report {
        let started = ContinuousClock.now
        var report = Report(mapping: mapping)
        // A dry run changes nothing, not even the control schema: on a target never synced, it
        // knows of no earlier copies.
        let known = dryRun ? try await control.isCurrent() : true
        let previous = known ? try await control.objectPass(mapping.id) : nil
        var pass: ControlStore.ObjectPass
        if !dryRun, let previous, previous.state == .running {
            // A killed pass: carry on after its checkpoint, with its counts.
            pass = previous
            report.resumed = true
            report.resumedAfter = previous.position
            logger.notice("resuming a pass that did not finish", metadata: [LogKey.mapping: .string(mapping.id), LogKey.after: .string(previous.position ?? "-")])
        } else {
            if !dryRun { try await control.startObjectPass(mapping.id) }
            pass = ControlStore.ObjectPass(mapping: mapping.id, state: .running, startedAt: Date())
        }
        try await merge(from: pass.position, dryRun: dryRun, recordsKnown: known, pass: &pass, report: &report)
        guard !stop.isRequested || dryRun else {
            // Stopped: the pass stays running, and the next one resumes from the checkpoint.
            if !dryRun { try await control.checkpointObjectPass(pass) }
            report.seconds = (ContinuousClock.now - started).seconds
            return report
        }
        if !dryRun {
            try await deleteExtras(pass: &pass, report: &report)
            pass.state = pass.failed > 0 ? .failed : .done
            pass.error = report.failures.first
            try await control.finishObjectPass(pass)
        }
        report.listed = pass.listed
        report.seconds = (ContinuousClock.now - started).seconds
        return report
    }

    /// One copy's outcome, back from its task.
    struct Copied: Sendable {
        var entry: ObjectEntry
        var replaced: Bool
        var result: Result<CopyRecord, any Error>
    }

    private func merge(from position: String?, dryRun: Bool, recordsKnown: Bool, pass: inout ControlStore.ObjectPass, report: inout Report) async throws {
        var (sources, targets, records) = cursors(from: position, recordsKnown: recordsKnown)
        var checkpoint = SyncCheckpoint(resumingAt: position)
        var lastSaved = ContinuousClock.now
        try await withThrowingTaskGroup(of: Copied.self) { group in
            var running = 0
            while !stop.isRequested, let (source, target) = try await Self.nextPair(&sources, &targets) {
                let name = source?.name ?? target!.name
                pass.listed += 1
                progress?.listed()
                guard mapping.selects(name) else {
                    checkpoint.skipped(name)
                    continue
                }
                let record = try await records.advance(to: name)
                let decision = ObjectDiff.decide(source: source, target: target, record: record)
                switch decision {
                case .unchanged:
                    checkpoint.skipped(name)
                case .extra:
                    try await noteExtra(target!, dryRun: dryRun, pass: &pass, report: &report)
                    checkpoint.skipped(name)
                case .copy, .replace:
                    let entry = source!
                    if dryRun {
                        note(entry, replace: decision == .replace, in: &report)
                        checkpoint.skipped(name)
                        continue
                    }
                    pass.pending += 1
                    pass.pendingBytes += entry.size
                    progress?.planned(bytes: entry.size)
                    if running >= settings.connections, let done = try await group.next() {
                        running -= 1
                        try await finish(done, pass: &pass, report: &report, checkpoint: &checkpoint)
                    }
                    checkpoint.started(name)
                    running += 1
                    group.addTask { [self] in
                        do {
                            return Copied(entry: entry, replaced: decision == .replace, result: .success(try await copy(entry)))
                        } catch {
                            return Copied(entry: entry, replaced: decision == .replace, result: .failure(error))
                        }
                    }
                }
                if ContinuousClock.now - lastSaved >= .seconds(1) && !dryRun {
                    pass.position = checkpoint.position
                    try await control.checkpointObjectPass(pass)
                    lastSaved = .now
                }
            }
            while let done = try await group.next() {
                try await finish(done, pass: &pass, report: &report, checkpoint: &checkpoint)
            }
        }
        pass.position = checkpoint.position
        report.listed = pass.listed
        report.extra = pass.extra
    }

    /// The three sorted inputs of the merge, each read a page at a time from `position` on.
    private func cursors(from position: String?, recordsKnown: Bool)
        -> (ListingCursor<ObjectEntry>, ListingCursor<ObjectEntry>, ListingCursor<CopyRecord>) {
        let sources = ListingCursor(after: position) { [source, settings] in try await source.list(after: $0, limit: settings.pageSize) }
        let targets = ListingCursor(after: position) { [target, settings] in try await target.list(after: $0, limit: settings.pageSize) }
        let records = ListingCursor(after: position) { [control, mapping] after -> (objects: [CopyRecord], more: Bool) in
            guard recordsKnown else { return ([], false) }
            let page = try await control.copyRecords(mapping.id, after: after, limit: Self.recordPage)
            return (page, page.count == Self.recordPage)
        }
        return (sources, targets, records)
    }

    /// An object only the target has: recorded, for the deletes at the end of the pass.
    private func noteExtra(_ target: ObjectEntry, dryRun: Bool, pass: inout ControlStore.ObjectPass, report: inout Report) async throws {
        pass.extra += 1
        report.extraBytes += target.size
        if report.toDelete.count < Report.namesShown { report.toDelete.append(target.name) }
        if !dryRun { try await control.recordExtra(mapping.id, name: target.name, size: target.size) }
    }

    private func note(_ entry: ObjectEntry, replace: Bool, in report: inout Report) {
        if replace {
            report.replaced += 1
            report.toReplaceBytes += entry.size
            if report.toReplace.count < Report.namesShown { report.toReplace.append(entry.name) }
        } else {
            report.copied += 1
            report.toCopyBytes += entry.size
            if report.toCopy.count < Report.namesShown { report.toCopy.append(entry.name) }
        }
    }

    private func finish(_ done: Copied, pass: inout ControlStore.ObjectPass, report: inout Report, checkpoint: inout SyncCheckpoint) async throws {
        pass.pending -= 1
        pass.pendingBytes -= done.entry.size
        switch done.result {
        case .success(let record):
            try await control.recordCopy(mapping.id, record)
            if done.replaced { pass.replaced += 1 } else { pass.copied += 1 }
            pass.copiedBytes += done.entry.size
            progress?.copied(bytes: done.entry.size)
        case .failure(let error):
            pass.failed += 1
            if report.failures.count < 10 { report.failures.append("\(done.entry.name): \(error)") }
            progress?.failed()
            logger.warning("object not copied; the next pass tries it again", metadata: [
                LogKey.mapping: .string(mapping.id), LogKey.object: .string(done.entry.name), LogKey.error: .string("\(error)")])
        }
        checkpoint.finished(done.entry.name)
        report.copied = pass.copied
        report.replaced = pass.replaced
        report.copiedBytes = pass.copiedBytes
        report.failed = pass.failed
    }

    /// The next name in either listing, with its entry on each side.
    static func nextPair(_ sources: inout ListingCursor<ObjectEntry>, _ targets: inout ListingCursor<ObjectEntry>) async throws
        -> (ObjectEntry?, ObjectEntry?)? {
        let source = try await sources.peek(), target = try await targets.peek()
        switch (source, target) {
        case (nil, nil): return nil
        case (_?, nil): return (try await sources.take(), nil)
        case (nil, _?): return (nil, try await targets.take())
        case (let source?, let target?):
            if source.name == target.name { return (try await sources.take(), try await targets.take()) }
            return utf8Precedes(source.name, target.name) ? (try await sources.take(), nil) : (nil, try await targets.take())
        }
    }

    /// Copies one object as it was listed: server-side when one set of credentials reaches both
    /// sides and it is not small (`serverSideMinimum`), otherwise through this host, a range at a time above the multipart threshold; any
    /// read fails once the source's ETag changed, so a copy is never of two versions.
    func copy(_ entry: ObjectEntry) async throws -> CopyRecord {
        let etag: String?
        if let from = source as? OCIObjectStore, let to = target as? OCIObjectStore, mapping.source.sharesCredentials(with: mapping.target),
           entry.size >= Int64(settings.serverSideMinimum) {
            // The copy's ETag only matters for a multipart object: a content MD5 vouches for the others.
            etag = try await to.copyServerSide(entry.name, from: from, ifMatch: entry.etag, wantETag: !entry.hasContentMD5)
        } else if entry.size <= Int64(settings.multipartThreshold) {
            let bytes = try await source.read(entry.name, range: nil, ifMatch: entry.etag)
            guard Int64(bytes.count) == entry.size else {
                throw StorageError.notCopied(key: entry.name, reason: "\(bytes.count) bytes read, the listing said \(entry.size)")
            }
            if entry.hasContentMD5, let md5 = entry.md5 {
                let digest = MessageDigest(.md5)
                digest.update(bytes)
                let actual = Data(digest.finalizeBytes()).base64EncodedString()
                guard actual == md5 else { throw StorageError.notCopied(key: entry.name, reason: "its MD5 is \(actual), the listing said \(md5)") }
            }
            etag = try await target.write(entry.name, bytes: bytes)
        } else {
            etag = try await target.write(entry.name, size: entry.size, partSize: settings.partSize) { [source] _, range in
                let bytes = try await source.read(entry.name, range: range, ifMatch: entry.etag)
                guard Int64(bytes.count) == Int64(range.count) else {
                    throw StorageError.notCopied(key: entry.name, reason: "\(bytes.count) bytes read of a \(range.count)-byte range")
                }
                return bytes
            }
        }
        return CopyRecord(name: entry.name, sourceSize: entry.size, sourceMD5: entry.md5, sourceETag: entry.etag, targetETag: etag)
    }

    /// The extra objects the pass found, deleted (or moved to the trash prefix) when the mapping
    /// allows it, nothing in the pass failed, and there are no more than its maximum.
    private func deleteExtras(pass: inout ControlStore.ObjectPass, report: inout Report) async throws {
        let extras = try await control.extraCount(mapping.id)
        report.extra = extras.count
        report.extraBytes = extras.bytes
        guard extras.count > 0 else { return }
        guard mapping.deletes.enabled else {
            report.deletesHeld = "deletes are off for this mapping (delete: true to remove them)"
            return
        }
        guard pass.failed == 0 else {
            report.deletesHeld = "\(pass.failed) copies failed in this pass: nothing is deleted after a failed pass"
            return
        }
        guard extras.count <= mapping.deletes.maximum else {
            report.deletesHeld = "\(extras.count) to delete, more than max_delete \(mapping.deletes.maximum): nothing deleted (raise it if that is right)"
            return
        }
        var after: String?
        while true {
            let page = try await control.extras(mapping.id, after: after, limit: Self.recordPage)
            guard let last = page.last else { break }
            for extra in page {
                if let trash = mapping.deletes.trashPrefix {
                    guard let entry = try await target.head(extra.name) else { continue }
                    _ = try await target.write(trash + extra.name, size: entry.size, partSize: settings.partSize) { [target] _, range in
                        try await target.read(extra.name, range: range, ifMatch: entry.etag)
                    }
                }
                try await target.delete(extra.name)
                try await control.forgetCopy(mapping.id, name: extra.name)
                pass.deleted += 1
            }
            after = last.name
        }
        report.deleted = pass.deleted
    }
}

/// A listing read a page at a time: `peek` and `take` in order, the next page fetched when the
/// current one is used up.
struct ListingCursor<Element: Sendable> {
    private var page: [Element] = []
    private var index = 0
    private var more = true
    private var after: String?
    private let fetch: @Sendable (String?) async throws -> (objects: [Element], more: Bool)
    private let name: (Element) -> String

    init(after: String?, fetch: @escaping @Sendable (String?) async throws -> (objects: [Element], more: Bool)) where Element == ObjectEntry {
        self.after = after
        self.fetch = fetch
        name = \.name
    }

    init(after: String?, fetch: @escaping @Sendable (String?) async throws -> (objects: [Element], more: Bool)) where Element == CopyRecord {
        self.after = after
        self.fetch = fetch
        name = \.name
    }

    mutating func peek() async throws -> Element? {
        while index == page.count {
            guard more else { return nil }
            let next = try await fetch(after)
            page = next.objects
            index = 0
            more = next.more && !next.objects.isEmpty
            if let last = page.last { after = name(last) }
        }
        return page[index]
    }

    mutating func take() async throws -> Element? {
        let element = try await peek()
        if element != nil { index += 1 }
        return element
    }

    /// Skips to `wanted`: the element of that name if there is one (records before it are of names
    /// neither listing has any more).
    mutating func advance(to wanted: String) async throws -> Element? {
        while let element = try await peek(), utf8Precedes(name(element), wanted) { index += 1 }
        guard let element = try await peek(), name(element) == wanted else { return nil }
        index += 1
        return element
    }
}
