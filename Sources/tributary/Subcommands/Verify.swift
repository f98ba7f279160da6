import ArgumentParser
import Foundation
import TributaryServices

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare every source table with its STG table: row count and content checksum.",
        discussion: "Exits 0 when every table matches, 1 otherwise.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Verify only this source (repeatable).")
    var sources: [String] = []

    @Option(name: .customLong("table"), help: "Verify only this table (schema.table or STG name; repeatable).")
    var tables: [String] = []

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let comparer = TableComparer(target: configuration.target.connection)
            var all: [TableComparer.Comparison] = []
            for source in try configuration.sources(named: sources) {
                all += try await comparer.compare(source: source, tables: tables)
            }
            if json {
                let rows = all.map { row -> [String: Any] in
                    ["source": row.source, "table": row.table, "stg_table": row.stagingTable, "source_rows": row.sourceRows,
                     "stg_rows": row.stagingRows as Any, "match": row.matches, "problem": row.problem as Any]
                }
                let data = try JSONSerialization.data(withJSONObject: ["tables": rows, "match": all.allSatisfy(\.matches)],
                                                      options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                Self.printTable(all)
            }
            if !all.allSatisfy(\.matches) { throw ExitCode(1) }
        }
    }

    static func printTable(_ all: [TableComparer.Comparison]) {
        print(Format.pad("source", 8) + Format.pad("table", 34) + Format.pad("stg table", 34)
              + Format.pad("source rows", 13, right: true) + Format.pad("stg rows", 13, right: true) + "  result")
        for row in all {
            let result = row.matches ? "match" : (row.problem ?? (row.sourceRows != row.stagingRows ? "ROW COUNT DIFFERS" : "CONTENT DIFFERS"))
            print(Format.pad(row.source, 8) + Format.pad(row.table, 34) + Format.pad(row.stagingTable, 34)
                  + Format.pad(Format.count(row.sourceRows), 13, right: true)
                  + Format.pad(row.stagingRows.map(Format.count) ?? "-", 13, right: true) + "  " + result)
        }
        let mismatches = all.filter { !$0.matches }.count
        print(mismatches == 0 ? "verify: all \(all.count) tables match: source and STG are identical row for row"
                              : "verify: \(mismatches) of \(all.count) tables differ")
    }
}
