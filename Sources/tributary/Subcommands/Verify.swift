import ArgumentParser
import Foundation
import TributaryCore
import TributaryServices

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare every source table with its STG table at one consistent point, run the key-indicator checks, and count the BL relationships' orphans.",
        discussion: """
            Each source is compared at one exact point while it stays live: a temporary slot's exported snapshot gives the \
            point, the source's applier (tributary run's, or this command's when nothing applies) holds its STG there while \
            both are compared, then goes on; the other sources go on meanwhile. A table that differs is narrowed down to the \
            key ranges that differ, in the key's own order. The checks: section of a source's YAML holds indicator queries \
            (one SQL for the source, one for the target) whose results must be equal; the references: of the BL models must \
            have no orphan. --no-hold compares now with now instead, again up to --recheck times while rows are in flight. \
            Exits 0 when all match, 1 otherwise, 2 on bad input.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Verify only this source (repeatable).")
    var sources: [String] = []

    @Option(name: .customLong("table"), help: "Verify only this table (schema.table or STG name; repeatable).")
    var tables: [String] = []

    @Flag(help: "Compare now with now, without holding STG at a point (differing tables compared again, --recheck).")
    var noHold = false

    @Option(help: "With --no-hold: compare a differing table again this many times, a second apart (rows in flight settle).")
    var recheck = 3

    @Option(help: "How long the applier may take to reach the point (seconds, or 5m).")
    var holdTimeout: Duration = .seconds(600)

    @Option(help: "Write the go/no-go report to FILE.md and FILE.json.")
    var report: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let selected = try configuration.sources(named: sources)
            let endpoints = Endpoints(configuration, command: "verify")
            // Bad input is said before anything is held.
            if let report { try CutoverReport.checkWritable(report) }
            try await ReferenceCheck(endpoints: endpoints).validate(configuration.models)
            var options = Verifier.Options()
            options.hold = !noHold
            options.rechecks = recheck
            options.holdTimeout = holdTimeout
            options.tables = tables
            let outcome = try await Verifier(endpoints: endpoints, configuration: configuration,
                                             store: try global.openStagingStore(configuration.target, command: "verify"), logger: global.makeLogger("verify"))
                .verify(selected, options: options)
            if let report {
                let cutover = CutoverReport(kind: "verify", sources: CutoverReport.sources(outcome, sequences: outcome.sequences, sourceNames: selected.map(\.name)),
                                            models: CutoverReport.models(configuration.models, statuses: [], references: outcome.references, reload: nil,
                                                                         surrogates: []),
                                            objects: CutoverReport.objects(outcome.objects))
                try cutover.write(to: report)
                if !json { print("verify: the \(cutover.verdict) report is in \(report).md and \(report).json") }
            }
            if json {
                print(outcome.json())
            } else {
                outcome.printTable()
            }
            if !outcome.matches { throw ExitCode(1) }
        }
    }
}

extension Verifier.Outcome {
    func printTable() {
        for point in points {
            var line = Format.pad(point.source, 8)
            if let lsn = point.point {
                line += "compared at \(lsn): STG held there \(String(format: "%.1f", point.heldSeconds ?? 0)) s"
                    + (point.lagBytes.map { ", \(Format.bytes($0)) staged past it meanwhile" } ?? "")
            } else {
                line += point.note ?? ""
            }
            print(line)
        }
        print(Format.pad("source", 8) + Format.pad("table", 34) + Format.pad("stg table", 34)
              + Format.pad("source rows", 13, right: true) + Format.pad("stg rows", 13, right: true) + "  result")
        for row in tables {
            let result = row.matches ? "match" : (row.problem ?? (row.sourceRows != row.stagingRows ? "ROW COUNT DIFFERS" : "CONTENT DIFFERS"))
            print(Format.pad(row.source, 8) + Format.pad(row.table, 34) + Format.pad(row.stagingTable, 34)
                  + Format.pad(Format.count(row.sourceRows), 13, right: true)
                  + Format.pad(row.stagingRows.map(Format.count) ?? "-", 13, right: true) + "  " + result)
            for range in row.differingRanges { print("        differs where \(range)") }
            if !row.notCompared.isEmpty { print("        not compared (generated or excluded, not replicated): \(row.notCompared.joined(separator: ", "))") }
            if !row.droppedOnSource.isEmpty { print("        dropped on the source, kept in STG: \(row.droppedOnSource.joined(separator: ", "))") }
        }
        for check in checks {
            let result = check.matches ? "match" : (check.problem ?? "DIFFERS: source \(Self.text(check.sourceRows)), target \(Self.text(check.targetRows ?? []))")
            print(Format.pad(check.source, 8) + Format.pad("check: " + check.name, 68) + "  " + result)
        }
        for mapping in objects { for line in Self.lines(mapping) { print(line) } }
        for reference in references { print(Verifier.Outcome.line(reference)) }
        for sequence in sequences where sequence.behind {
            print(Format.pad(sequence.source, 8) + "sequence \(sequence.sequence): the target's \(sequence.target) is behind the source "
                  + "(\(sequence.targetValue.map(String.init) ?? "missing") < \(sequence.sourceValue.map(String.init) ?? "-")): drain carries it over")
        }
        let tableMismatches = tables.filter { !$0.matches }.count
        let checkMismatches = checks.filter { !$0.matches }.count
        let objectMismatches = objects.filter { !$0.inPlace }.count
        let orphans = references.filter { !$0.passes }.count
        let objectsSaid = objects.isEmpty ? "" : objectMismatches == 0
            ? "; all files are in place (\(objects.count) mappings)" : ", \(objectMismatches) of \(objects.count) object mappings differ"
        let referencesSaid = references.isEmpty ? "" : orphans == 0 ? "; no relationship has an orphan that fails it"
            : ", \(orphans) of \(references.count) relationships have orphans"
        if tableMismatches + checkMismatches == 0 {
            let unreplicated = tables.reduce(0) { $0 + $1.notCompared.count }
            print("verify: all \(tables.count) tables match: source and STG are identical row for row"
                  + (unreplicated == 0 ? "" : " in every replicated column (\(unreplicated) generated or excluded columns not compared)")
                  + (checks.isEmpty ? "" : "; all \(checks.count) checks agree") + objectsSaid + referencesSaid)
        } else {
            print("verify: \(tableMismatches) of \(tables.count) tables differ" + (checks.isEmpty ? "" : ", \(checkMismatches) of \(checks.count) checks differ")
                  + objectsSaid + referencesSaid)
        }
    }

    /// A relationship's count: its orphans, named.
    static func line(_ reference: ReferenceCheck.Outcome) -> String {
        let head = "model " + Format.pad(reference.model, 18) + "references " + reference.reference + ": "
        if reference.notBuilt { return head + "not built yet" }
        if reference.orphans == 0 { return head + "no orphan" }
        return head + "\(reference.orphans) ORPHANS" + (reference.onOrphan == .warn ? " (warn only)" : "")
            + (reference.sample.isEmpty ? "" : ", e.g. " + reference.sample.prefix(10).joined(separator: "; "))
    }

    /// A mapping's comparison: in place, or the names missing, different or extra.
    static func lines(_ report: ObjectSyncReport) -> [String] {
        let head = Format.pad(report.mapping.id.split(separator: ":").first.map(String.init) ?? "", 8) + "objects " + report.mapping.target.description
        if let error = report.error { return [head + "  FAILED: " + error] }
        if report.inPlace { return [head + "  match: all \(Format.count(Int(report.listed - report.extra))) files in place"] }
        var lines = [head + "  DIFFERS: \(report.copied) missing, \(report.replaced) different, \(report.extra) only in the target"]
        lines += report.toCopy.map { "        missing   \($0)" } + report.toReplace.map { "        differs   \($0)" }
            + report.toDelete.map { "        extra     \($0)" }
        return lines
    }

    static func text(_ rows: [[String?]]) -> String {
        rows.prefix(3).map { "(" + $0.map { $0 ?? "NULL" }.joined(separator: ", ") + ")" }.joined(separator: " ") + (rows.count > 3 ? " …" : "")
    }

    func json() -> String {
        let tableRows = tables.map { row -> [String: Any] in
            ["source": row.source, "table": row.table, "stg_table": row.stagingTable, "source_rows": row.sourceRows,
             "stg_rows": row.stagingRows as Any, "match": row.matches, "problem": row.problem as Any, "differing_ranges": row.differingRanges, "not_compared": row.notCompared, "dropped_on_source": row.droppedOnSource]
        }
        let checkRows = checks.map { check -> [String: Any] in
            ["source": check.source, "name": check.name, "match": check.matches, "problem": check.problem as Any,
             "source_rows": check.sourceRows.map { $0.map { $0 as Any } }, "target_rows": (check.targetRows?.map { $0.map { $0 as Any } }) as Any]
        }
        let objectRows = objects.map { report -> [String: Any] in
            ["mapping": report.mapping.id, "target": report.mapping.target.description, "match": report.inPlace, "missing": report.toCopy,
             "different": report.toReplace, "extra": report.toDelete, "error": report.error as Any]
        }
        let pointRows = points.map { point -> [String: Any] in
            ["source": point.source, "point": point.point?.description as Any, "held_seconds": point.heldSeconds as Any,
             "lag_bytes": point.lagBytes as Any, "note": point.note as Any]
        }
        let referenceRows = references.map { reference -> [String: Any] in
            ["model": reference.model, "reference": reference.reference, "orphans": reference.orphans, "sample": reference.sample,
             "on_orphan": reference.onOrphan.rawValue, "passes": reference.passes, "not_built": reference.notBuilt]
        }
        let sequenceRows = sequences.map { sequence -> [String: Any] in
            ["source": sequence.source, "sequence": sequence.sequence, "target": sequence.target, "source_value": sequence.sourceValue as Any,
             "target_value": sequence.targetValue as Any, "behind": sequence.behind]
        }
        let data = try! JSONSerialization.data(withJSONObject: ["tables": tableRows, "checks": checkRows, "objects": objectRows, "match": matches,
                                                                "points": pointRows, "references": referenceRows, "sequences": sequenceRows],
                                               options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
