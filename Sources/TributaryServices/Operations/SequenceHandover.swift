import Foundation
import TributaryCore
import TributaryPostgres

/// At cutover the target takes the application's writes: its sequences must continue where the
/// sources' stopped. `drain` carries over every sequence owned by a configured table's column and
/// every sequence a source lists (`sequences:`), set to the source's value (plus
/// `sequence_margin`), and gives each BL model's surrogate column a default that draws from the
/// sequence its surrogates come from, so an insert without one gets a new, unused surrogate.
/// `verify` says which carried-over sequences are behind their source.
public struct SequenceHandover: Sendable {
    public struct Outcome: Sendable, Equatable {
        public var source: String
        public var sequence: String
        public var target: String
        /// The column whose sequence it is (`public.invoices.id`), or nil for a listed one.
        public var ownedBy: String?
        /// The source's `last_value`; nil when it was never used (or not readable).
        public var sourceValue: Int64?
        /// The target sequence's `last_value` (after a carry-over: what it was set to).
        public var targetValue: Int64?
        public var note: String?

        /// The target would hand out a value the source has already used.
        public var behind: Bool {
            guard let sourceValue else { return false }
            return targetValue.map { $0 < sourceValue } ?? true
        }
    }

    public struct SurrogateOutcome: Sendable, Equatable {
        public var model: String
        /// `bl.contract.contract_id`.
        public var column: String
        /// The sequence its default draws from (the key map's).
        public var sequence: String
        /// The highest surrogate handed out so far.
        public var highest: Int64?
    }

    public let endpoints: Endpoints

    public init(endpoints: Endpoints) { self.endpoints = endpoints }

    /// The sequences of `source` to carry over: owned by a configured table's column, or listed.
    /// A listed sequence the source does not have is a configuration error naming the file.
    public func sequences(of source: SourceConfiguration) async throws -> [Outcome] {
        // A configured table renamed on the source is found by the relation id STG recorded for it.
        let recorded = (try? await endpoints.target.withControl(migrate: false) { control -> [QualifiedName: UInt32] in
            try await control.isCurrent() ? control.recordedTableOIDs(of: source.name) : [:]
        }) ?? [:]
        return try await endpoints.source(source).withConnection(for: "drain") { connection in
            var outcomes: [Outcome] = []
            let owned = try await connection.query("""
                SELECT s.oid::regclass::text AS sequence, quote_ident(n.nspname) AS schema, quote_ident(s.relname) AS name,
                       t.oid::regclass::text || '.' || quote_ident(a.attname) AS owner,
                       (SELECT last_value FROM pg_sequences q WHERE q.schemaname = n.nspname AND q.sequencename = s.relname) AS last_value
                FROM pg_depend d
                JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                JOIN pg_namespace n ON n.oid = s.relnamespace
                JOIN pg_class t ON t.oid = d.refobjid
                JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                  AND (t.oid IN (SELECT to_regclass(name) FROM unnest($1::text[]) AS name) OR t.oid = ANY($2::oid[]))
                ORDER BY 1
                """, [PostgresArray.literal(source.tables.map(\.table.sql)),
                      PostgresArray.literal(source.tables.compactMap { recorded[$0.table] }.map { String($0) })]).rows
            for row in owned {
                guard let sequence = QualifiedName(parsing: "\(try row.decode("schema", as: String.self)).\(try row.decode("name", as: String.self))")
                else { continue }
                outcomes.append(Outcome(source: source.name, sequence: sequence.description,
                                        target: SequenceCarryOver(sequence: sequence).target(source: source.name).description,
                                        ownedBy: try row.decode("owner"), sourceValue: try row.decodeIfPresent("last_value")))
            }
            for (index, listed) in source.sequences.enumerated() where !outcomes.contains(where: { $0.sequence == listed.sequence.description }) {
                guard try await connection.query("SELECT to_regclass($1) IS NOT NULL", [listed.sequence.sql]).scalar(Bool.self) else {
                    throw TributaryError.configuration(file: source.file, keyPath: "sequences[\(index)].name",
                                                       problem: "\(listed.sequence) is no sequence on \(source.name)")
                }
                let value = try await connection.query("SELECT last_value FROM pg_sequences WHERE schemaname = $1 AND sequencename = $2",
                                                       [listed.sequence.schema, listed.sequence.name]).optionalScalar(Int64.self)
                outcomes.append(Outcome(source: source.name, sequence: listed.sequence.description,
                                        target: listed.target(source: source.name).description, sourceValue: value))
            }
            return outcomes
        }
    }

    /// Creates each target sequence that is missing and sets it to the source's value plus the
    /// source's margin (never back: a target sequence already past it stays).
    public func carryOver(_ sources: [SourceConfiguration]) async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for source in sources {
            let wanted = try await sequences(of: source)
            try await endpoints.target.withConnection(for: "drain") { connection in
                for var outcome in wanted {
                    guard let target = QualifiedName(parsing: outcome.target) else { continue }
                    try await connection.execute(ControlSchema.createSchemas([target.schema]) + "CREATE SEQUENCE IF NOT EXISTS \(target.sql)")
                    if let value = outcome.sourceValue {
                        outcome.targetValue = try await connection.query("""
                            SELECT setval($1::regclass, greatest($2::bigint, coalesce((SELECT last_value FROM pg_sequences
                                WHERE schemaname = $3 AND sequencename = $4), 0)), true)
                            """, [target.sql, String(value + source.sequenceMargin), target.schema, target.name]).scalar(Int64.self)
                    } else {
                        outcome.note = "never used on the source (or not readable: GRANT SELECT ON SEQUENCE \(outcome.sequence) to the role)"
                    }
                    outcomes.append(outcome)
                }
            }
        }
        return outcomes
    }

    /// What `verify` reports: each sequence to carry over with the target's value now.
    public func compare(_ sources: [SourceConfiguration]) async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for source in sources {
            let wanted = try await sequences(of: source)
            try await endpoints.target.withConnection(for: "verify") { connection in
                for var outcome in wanted {
                    if let target = QualifiedName(parsing: outcome.target) {
                        outcome.targetValue = try await connection.query("""
                            SELECT last_value FROM pg_sequences WHERE schemaname = $1 AND sequencename = $2
                            """, [target.schema, target.name]).optionalScalar(Int64.self)
                    }
                    outcomes.append(outcome)
                }
            }
        }
        return outcomes
    }

    /// Each surrogate column of a built model (with `surrogate_default`) draws from the sequence
    /// of the model's key map, which made every surrogate so far: the application's inserts get
    /// new ones, and a BL run after them never hands out one of theirs.
    public func surrogateDefaults(_ models: [TransformModel]) async throws -> [SurrogateOutcome] {
        try await endpoints.target.withConnection(.apply, for: "drain") { connection in
            var outcomes: [SurrogateOutcome] = []
            for model in models where model.surrogateDefault {
                guard let surrogate = model.surrogate else { continue }
                let map = TransformSQL(model: model).surrogateMap
                guard let sequence = try await connection.query("""
                    SELECT CASE WHEN to_regclass($1) IS NOT NULL AND to_regclass($3) IS NOT NULL THEN pg_get_serial_sequence($1, $2) END
                    """, [map.sql, surrogate, model.table.sql]).optionalScalar(String.self) else { continue }
                let column = "\(model.table.sql).\(SQL.identifier(surrogate))"
                let highest = try await connection.query("SELECT max(\(SQL.identifier(surrogate))) FROM \(model.table.sql)").optionalScalar(Int64.self)
                try await connection.execute("""
                    ALTER TABLE \(model.table.sql) ALTER COLUMN \(SQL.identifier(surrogate)) SET DEFAULT nextval(\(SQL.literal(sequence))::regclass)
                    """)
                outcomes.append(SurrogateOutcome(model: model.name, column: column, sequence: sequence, highest: highest))
            }
            return outcomes
        }
    }
}
