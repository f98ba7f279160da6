import ArgumentParser
import Foundation
import TributaryCore
import TributaryServices

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare every source table with its STG table (row count and content checksum), and run the key-indicator checks.",
        discussion: """
            A table that differs is narrowed down to the key ranges (in the keys' text order) that differ. While replication \
            is live, rows in flight can differ for a moment: a differing table is compared again up to --recheck times, a \
            second apart, and reported as matching only if it then does. The checks: section of a source's YAML holds \
            indicator queries (one SQL for the source, one for the target) whose results must be equal. Exits 0 when all \
            match, 1 otherwise.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Verify only this source (repeatable).")
    var sources: [String] = []

    @Option(name: .customLong("table"), help: "Verify only this table (schema.table or STG name; repeatable).")
    var tables: [String] = []

    @Option(help: "Compare a differing table again this many times, a second apart (rows in flight settle).")
    var recheck = 3

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let outcome = try await Verifier(endpoints: Endpoints(configuration, command: "verify"), configuration: tables.isEmpty ? configuration : nil,
                                             logger: global.makeLogger("verify"))
                .verify(try configuration.sources(named: sources), tables: tables, rechecks: recheck)
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
        let tableMismatches = tables.filter { !$0.matches }.count
        let checkMismatches = checks.filter { !$0.matches }.count
        let objectMismatches = objects.filter { !$0.inPlace }.count
        let objectsSaid = objects.isEmpty ? "" : objectMismatches == 0
            ? "; all files are in place (\(objects.count) mappings)" : ", \(objectMismatches) of \(objects.count) object mappings differ"
        if tableMismatches + checkMismatches == 0 {
            let unreplicated = tables.reduce(0) { $0 + $1.notCompared.count }
            print("verify: all \(tables.count) tables match: source and STG are identical row for row"
                  + (unreplicated == 0 ? "" : " in every replicated column (\(unreplicated) generated or excluded columns not compared)")
                  + (checks.isEmpty ? "" : "; all \(checks.count) checks agree") + objectsSaid)
        } else {
            print("verify: \(tableMismatches) of \(tables.count) tables differ" + (checks.isEmpty ? "" : ", \(checkMismatches) of \(checks.count) checks differ")
                  + objectsSaid)
        }
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
        let data = try! JSONSerialization.data(withJSONObject: ["tables": tableRows, "checks": checkRows, "objects": objectRows, "match": matches],
                                               options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
