import Foundation
import TributaryCore

/// The go/no-go report of a cutover (`drain --report FILE`, `verify --report FILE`): everything the
/// gate found, as Markdown for people (`FILE.md`) and JSON for tools (`FILE.json`). JSON keys are
/// only ever added, never renamed.
public struct CutoverReport: Sendable, Codable, Equatable {
    public struct Source: Sendable, Codable, Equatable {
        public var source: String
        /// The drain's end, or the point a verify compared at.
        public var point: String?
        public var note: String?
        /// A drain's time to reach the end, or a verify's hold.
        public var seconds: Double?
        public var batches: Int?
        public var rows: Int?
        /// What was staged past the point while STG was held there.
        public var lagBytes: Int?
        public var tables: [Table]
        public var checks: [Check]
        public var sequences: [Sequence]

        enum CodingKeys: String, CodingKey {
            case source, point, note, seconds, batches, rows, lagBytes = "lag_bytes", tables, checks, sequences
        }
    }

    public struct Table: Sendable, Codable, Equatable {
        public var table: String
        public var stgTable: String
        public var sourceRows: Int
        public var stgRows: Int?
        public var match: Bool
        public var problem: String?
        public var differingRanges: [String]

        enum CodingKeys: String, CodingKey {
            case table, stgTable = "stg_table", sourceRows = "source_rows", stgRows = "stg_rows", match, problem, differingRanges = "differing_ranges"
        }

        /// What differs, and where.
        var result: String {
            (problem ?? (sourceRows != stgRows ? "row count differs" : "content differs"))
                + (differingRanges.isEmpty ? "" : " where " + differingRanges.joined(separator: "; "))
        }
    }

    public struct Check: Sendable, Codable, Equatable {
        public var name: String
        public var match: Bool
        public var problem: String?
        public var sourceRows: [[String?]]
        public var targetRows: [[String?]]?

        enum CodingKeys: String, CodingKey { case name, match, problem, sourceRows = "source_rows", targetRows = "target_rows" }
    }

    public struct Sequence: Sendable, Codable, Equatable {
        public var sequence: String
        public var target: String
        public var ownedBy: String?
        public var sourceValue: Int64?
        public var targetValue: Int64?
        public var behind: Bool
        public var note: String?

        enum CodingKeys: String, CodingKey {
            case sequence, target, ownedBy = "owned_by", sourceValue = "source_value", targetValue = "target_value", behind, note
        }
    }

    public struct Model: Sendable, Codable, Equatable {
        public var model: String
        public var table: String
        public var rows: Int?
        public var state: String?
        /// Nil when not compared (verify compares the relationships, drain with a report both).
        public var equalsFullReload: Bool?
        public var references: [Reference]
        /// The surrogate column's default at cutover.
        public var surrogateDefault: String?

        enum CodingKeys: String, CodingKey {
            case model, table, rows, state, equalsFullReload = "equals_full_reload", references, surrogateDefault = "surrogate_default"
        }
    }

    public struct Reference: Sendable, Codable, Equatable {
        public var reference: String
        public var orphans: Int
        public var sample: [String]
        public var onOrphan: String
        public var passes: Bool

        enum CodingKeys: String, CodingKey { case reference, orphans, sample, onOrphan = "on_orphan", passes }
    }

    public struct Objects: Sendable, Codable, Equatable {
        public var mapping: String
        public var target: String
        public var inPlace: Bool
        public var missing: [String]
        public var differing: [String]
        public var extra: [String]
        public var error: String?

        enum CodingKeys: String, CodingKey { case mapping, target, inPlace = "in_place", missing, differing, extra, error }

        var result: String {
            error ?? (inPlace ? "all in place" : "\(missing.count) missing, \(differing.count) differing, \(extra.count) only in the target")
        }
    }

    /// `drain` or `verify`.
    public var kind: String
    public var generatedAt: Date
    /// `go` or `no-go`.
    public var verdict: String
    /// Why not: every finding that fails the gate, one line each.
    public var reasons: [String]
    public var sources: [Source]
    public var models: [Model]
    public var objects: [Objects]

    enum CodingKeys: String, CodingKey {
        case kind, generatedAt = "generated_at", verdict, reasons, sources, models, objects
    }

    public init(kind: String, sources: [Source], models: [Model], objects: [Objects]) {
        self.kind = kind
        generatedAt = Date()
        self.sources = sources
        self.models = models
        self.objects = objects
        reasons = Self.reasons(kind: kind, sources: sources, models: models, objects: objects)
        verdict = reasons.isEmpty ? "go" : "no-go"
    }

    /// Every finding that fails the gate. A sequence behind its source fails a drain's (it carried
    /// them over); before cutover, a verify only shows it.
    static func reasons(kind: String, sources: [Source], models: [Model], objects: [Objects]) -> [String] {
        var reasons: [String] = []
        for source in sources {
            for table in source.tables where !table.match {
                reasons.append("\(source.source) \(table.table): \(table.result)")
            }
            for check in source.checks where !check.match { reasons.append("\(source.source) check \(check.name): \(check.problem ?? "differs")") }
            for sequence in source.sequences where sequence.behind && kind == "drain" {
                reasons.append("\(source.source) sequence \(sequence.sequence): the target's \(sequence.target) is behind the source")
            }
        }
        for model in models {
            if model.equalsFullReload == false { reasons.append("model \(model.model): differs from a full reload") }
            for reference in model.references where !reference.passes {
                reasons.append("model \(model.model): \(reference.orphans) orphans (\(reference.reference))")
            }
        }
        for mapping in objects where !mapping.inPlace { reasons.append("objects \(mapping.mapping): \(mapping.result)") }
        return reasons
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(self)
    }

    /// The report for people: the verdict first, then what it rests on.
    public func markdown() -> String {
        var lines = ["# Cutover \(kind) report: \(verdict == "go" ? "GO" : "NO-GO")", "",
                     "Generated \(ISO8601DateFormatter().string(from: generatedAt)) by `tributary \(kind)`.", ""]
        if reasons.isEmpty {
            lines.append("Every table is identical to its source, every check agrees, no relationship has an orphan"
                         + (objects.isEmpty ? "" : ", every file is in place") + ".")
        } else {
            lines.append("**Why not:**")
            lines += reasons.map { "- \(Self.cell($0))" }
        }
        for source in sources { lines += section(source) }
        if !models.isEmpty { lines += modelsSection() }
        if !objects.isEmpty {
            lines += ["", "## Object files", ""] + Self.table(["mapping", "target", "result"], objects.map { [$0.mapping, $0.target, $0.result] })
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func section(_ source: Source) -> [String] {
        var lines = ["", "## Source \(source.source)", ""]
        var facts: [String] = []
        if let point = source.point { facts.append("point `\(point)`") }
        if let seconds = source.seconds { facts.append(String(format: "%.1f s", seconds)) }
        if let batches = source.batches, let rows = source.rows { facts.append("\(batches) batches, \(rows) rows applied") }
        if let lag = source.lagBytes { facts.append("\(lag) bytes staged past the point while held") }
        if let note = source.note { facts.append(note) }
        if !facts.isEmpty { lines += [facts.joined(separator: "; ") + ".", ""] }
        lines += Self.table(["table", "STG table", "source rows", "STG rows", "result"], source.tables.map {
            [$0.table, $0.stgTable, String($0.sourceRows), $0.stgRows.map(String.init) ?? "-", $0.match ? "identical" : $0.result]
        })
        if !source.checks.isEmpty {
            lines += [""] + Self.table(["check", "result"], source.checks.map { [$0.name, $0.match ? "agrees" : $0.problem ?? "differs"] })
        }
        if !source.sequences.isEmpty {
            lines += [""] + Self.table(["sequence", "on the target", "source value", "target value", "result"], source.sequences.map {
                [$0.sequence, $0.target, $0.sourceValue.map(String.init) ?? "-", $0.targetValue.map(String.init) ?? "-",
                 $0.behind ? "BEHIND" : $0.note ?? "ok"]
            })
        }
        return lines
    }

    private func modelsSection() -> [String] {
        var lines = ["", "## BL models", ""]
        lines += Self.table(["model", "rows", "equals a full reload", "orphans", "surrogate default"], models.map { model in
            [model.model, model.rows.map(String.init) ?? "-", model.equalsFullReload.map { $0 ? "yes" : "NO" } ?? "-",
             model.references.isEmpty ? "-" : model.references.map { "\($0.orphans) (\($0.reference))" }.joined(separator: "; "),
             model.surrogateDefault ?? "-"]
        })
        for model in models {
            for reference in model.references where reference.orphans > 0 {
                lines += ["", "Orphans of \(model.model) (\(Self.cell(reference.reference))), first \(reference.sample.count):"]
                lines += reference.sample.map { "- `\($0)`" }
            }
        }
        return lines
    }

    /// A Markdown table: a header row, then one row per entry.
    static func table(_ header: [String], _ rows: [[String]]) -> [String] {
        ["| " + header.joined(separator: " | ") + " |", "|" + header.map { _ in " --- |" }.joined()]
            + rows.map { "| " + $0.map(cell).joined(separator: " | ") + " |" }
    }

    /// Text for a table cell: no pipe or line break splits the table.
    static func cell(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    /// Whether `base.md` and `base.json` can be written: checked before anything is held or changed.
    public static func checkWritable(_ base: String) throws {
        let directory = (base as NSString).deletingLastPathComponent
        let folder = directory.isEmpty ? "." : directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue,
              FileManager.default.isWritableFile(atPath: folder) else {
            throw TributaryError(.usage, "--report \(base): \(folder) is not a directory this user may write to")
        }
        for file in [base + ".md", base + ".json"] where FileManager.default.fileExists(atPath: file) && !FileManager.default.isWritableFile(atPath: file) {
            throw TributaryError(.usage, "--report \(base): \(file) exists and this user may not write it")
        }
    }

    /// Writes `base.md` and `base.json`.
    public func write(to base: String) throws {
        try Data(markdown().utf8).write(to: URL(fileURLWithPath: base + ".md"), options: .atomic)
        try json().write(to: URL(fileURLWithPath: base + ".json"), options: .atomic)
    }
}

extension CutoverReport {
    /// A verify's (or a drain's verify's) findings as report sections.
    public static func sources(_ outcome: Verifier.Outcome, sequences: [SequenceHandover.Outcome], sourceNames: [String]) -> [Source] {
        sourceNames.map { name in
            let point = outcome.points.first { $0.source == name }
            return Source(
                source: name, point: point?.point?.description, note: point?.note, seconds: point?.heldSeconds, batches: nil, rows: nil,
                lagBytes: point?.lagBytes,
                tables: outcome.tables.filter { $0.source == name }.map {
                    Table(table: $0.table, stgTable: $0.stagingTable, sourceRows: $0.sourceRows, stgRows: $0.stagingRows, match: $0.matches,
                          problem: $0.problem, differingRanges: $0.differingRanges)
                },
                checks: outcome.checks.filter { $0.source == name }.map {
                    Check(name: $0.name, match: $0.matches, problem: $0.problem, sourceRows: $0.sourceRows, targetRows: $0.targetRows)
                },
                sequences: sequences.filter { $0.source == name }.map {
                    Sequence(sequence: $0.sequence, target: $0.target, ownedBy: $0.ownedBy, sourceValue: $0.sourceValue, targetValue: $0.targetValue,
                             behind: $0.behind, note: $0.note)
                })
        }
    }

    public static func objects(_ reports: [ObjectSyncReport]) -> [Objects] {
        reports.map {
            Objects(mapping: $0.mapping.id, target: $0.mapping.target.description, inPlace: $0.inPlace, missing: $0.toCopy, differing: $0.toReplace,
                    extra: $0.toDelete, error: $0.error)
        }
    }

    public static func models(_ models: [TransformModel], statuses: [ModelStatus], references: [ReferenceCheck.Outcome],
                              reload: [TransformCheck.Difference]?, surrogates: [SequenceHandover.SurrogateOutcome]) -> [Model] {
        models.map { model in
            let status = statuses.first { $0.model == model.name }
            let difference = reload?.first { $0.model == model.name }
            return Model(model: model.name, table: model.table.description, rows: difference?.reloadRows, state: status?.state.rawValue,
                         equalsFullReload: difference?.matches,
                         references: references.filter { $0.model == model.name }.map {
                             Reference(reference: $0.reference, orphans: $0.orphans, sample: $0.sample, onOrphan: $0.onOrphan.rawValue, passes: $0.passes)
                         },
                         surrogateDefault: surrogates.first { $0.model == model.name }.map { "\($0.column) DEFAULT nextval('\($0.sequence)')" })
        }
    }
}
