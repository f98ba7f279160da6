import Foundation
import Logging
import TributaryCore
import TributaryPostgres

/// The applier's side of schema changes, in a batch's transaction, between a file's load and its
/// merge: the STG table follows the file's shape as `StagingSchemaPlanner` decides from the shape
/// it last followed (recorded in the control state with the columns' catalog numbers), each
/// change is recorded for `status`, an added column whose existing values no change carried asks
/// for a table snapshot, and what cannot be followed stops the source with the fix, unless a
/// table snapshot's copy already covers the file.
struct SchemaFollowing: Sendable {
    let source: SourceConfiguration
    /// The batch's end: a copy taken at or after it holds every change of the batch.
    let batchEnd: LSN
    let logger: Logger

    /// What becomes of a file once STG follows its shape.
    enum Disposition: Equatable {
        case merge
        /// A table snapshot's copy, taken after it, holds its changes already, or (with `before`,
        /// a verify's hold) it has none before the hold.
        case leaveOut
        /// Its STG table was just created empty: the file waits for the table's copy (`TablePromotion.replayDeferredFiles`).
        case awaitCopy
    }

    /// - Parameter recorded: the shape recorded for the STG table, when the batch looked it up
    ///   already (`BatchLookups`; `.some(nil)`: none recorded); `nil`: looked up here.
    func follow(_ file: BatchFile, changes sql: MergeSQL, before: LSN?, recorded lookedUp: (relation: RelationSchema, lsn: LSN)?? = nil,
                on connection: isolated PostgresConnection) throws -> Disposition {
        let stagingTable = QualifiedName(schema: StagingColumns.schema, name: file.stagingTable)
        let recorded = if let lookedUp { lookedUp } else { try ControlStore.stagingRelation(file.stagingTable, on: connection) }
        // Nearly every file: the shape STG follows already.
        if recorded?.relation == file.relation && before == nil { return .merge }
        let first = try connection.query("SELECT min(_lsn) FROM \(sql.changes)").optionalScalar(LSN.self) ?? batchEnd
        if let before, first >= before { return .leaveOut }
        if recorded?.relation == file.relation { return .merge }
        let columns = try TargetCatalog.columns(of: stagingTable, on: connection)
        guard !columns.isEmpty else {
            // No snapshot created it (the table joined the configuration later): created empty.
            try connection.execute(SnapshotSQL.createStagingTable(stagingTable, relation: file.relation))
            try ControlStore.recordStagingRelation(file.relation, stagingTable: file.stagingTable, source: source.name, at: first, on: connection)
            // Its changes wait for its copy: merged into a table without its rows, an update that
            // leaves a large value out as unchanged TOAST would store it as NULL, newer than the copy.
            try ControlStore.awaitCopy(file.stagingTable, source: source.name, since: first, on: connection)
            logger.warning("STG table did not exist and was created empty; its changes wait for its copy: snapshot this table to fill it",
                           metadata: [LogKey.table: .string(stagingTable.description)])
            return .awaitCopy
        }
        let copiedAt = try ControlStore.copiedAt(file.stagingTable, on: connection)
        let coveredByCopy = copiedAt.map { $0 >= batchEnd } ?? false
        if let recorded, recorded.lsn > first, coveredByCopy {
            // Older than the shape a table snapshot's merge brought: the copy holds these changes.
            logger.info("file left out: a table snapshot's copy holds its changes", metadata: [
                LogKey.table: .string(stagingTable.description), LogKey.snapshot: .string(copiedAt!.description)])
            return .leaveOut
        }
        if StagingSchemaPlanner.shapeFromCopy(incoming: file.relation, recorded: recorded?.relation, recordedAt: recorded?.lsn, copiedAt: copiedAt) != nil {
            logger.info("columns the replicator could not tell apart are those the table snapshot's copy read at its point", metadata: [
                LogKey.table: .string(stagingTable.description), LogKey.snapshot: .string(copiedAt!.description)])
            return .merge
        }
        let context = StagingSchemaPlanner.Context(source: source.name, sourceFile: source.file, stagingTable: stagingTable, policy: source.schemaChanges)
        let staging = Dictionary(columns.map { ($0.name, $0.type) }, uniquingKeysWith: { first, _ in first })
        switch StagingSchemaPlanner.plan(recorded: recorded?.relation, incoming: file.relation, staging: staging, context: context) {
        case .unchanged:
            break
        case .follow(let steps, let resync):
            for step in steps {
                for statement in step.statements { try connection.execute(statement) }
                try ControlStore.recordSchemaChange(step, source: source.name, stagingTable: file.stagingTable,
                                                    table: file.relation.sourceName ?? file.relation.table, at: first, on: connection)
                logger.notice("schema change followed", metadata: [
                    LogKey.table: .string(file.relation.table.description), LogKey.change: .string(step.description), LogKey.lsn: .string(first.description),
                ])
            }
            if let resync {
                try ControlStore.requestResync(source.name, table: file.relation.table, reason: resync, at: batchEnd, on: connection)
                logger.notice("a table snapshot is taken for values no change carried", metadata: [
                    LogKey.table: .string(file.relation.table.description), LogKey.reason: .string(resync)])
            }
        case .stop(let change, let fix):
            if coveredByCopy {
                logger.notice("file left out: a table snapshot's copy holds its changes, and the shape the copy brought", metadata: [
                    LogKey.table: .string(stagingTable.description), LogKey.change: .string(change)])
                return .leaveOut
            }
            throw TributaryError.schemaStop(change, fix: fix, source: source.name)
        }
        // A shape without numbers (a table dropped since, read by name) never replaces one with them.
        if file.relation.identifiesColumns || recorded?.relation.identifiesColumns != true {
            try ControlStore.recordStagingRelation(file.relation, stagingTable: file.stagingTable, source: source.name, at: first, on: connection)
        }
        return .merge
    }

    /// A table snapshot's copy merged into an existing STG table: STG follows the copy's shape
    /// first (the copy is the table at its point, so whatever STG can follow, it follows), and
    /// that shape is what STG follows from the copy's point on.
    static func followCopy(_ relation: RelationSchema, stagingTable: String, source: String, at point: LSN, logger: Logger,
                           on connection: isolated PostgresConnection) throws {
        // Read from the catalog at the copy's own point: its columns' numbers are exact.
        var relation = relation
        relation.announced = true
        let table = QualifiedName(schema: StagingColumns.schema, name: stagingTable)
        let recorded = try ControlStore.stagingRelation(stagingTable, on: connection)
        if let recorded, recorded.lsn > point {
            // STG follows a newer shape already: the copy's columns by name, as before.
            try TablePromotion.addMissingColumns(relation, to: table, on: connection)
            return
        }
        let columns = try TargetCatalog.columns(of: table, on: connection)
        let context = StagingSchemaPlanner.Context(source: source, sourceFile: "slots/\(source).yaml", stagingTable: table, policy: .follow)
        switch StagingSchemaPlanner.plan(recorded: recorded?.relation, incoming: relation,
                                         staging: Dictionary(columns.map { ($0.name, $0.type) }, uniquingKeysWith: { first, _ in first }), context: context) {
        case .unchanged:
            break
        case .follow(let steps, _):
            for step in steps {
                for statement in step.statements { try connection.execute(statement) }
                try ControlStore.recordSchemaChange(step, source: source, stagingTable: stagingTable, table: relation.sourceName ?? relation.table,
                                                    at: point, on: connection)
                logger.notice("schema change followed with a table snapshot", metadata: [
                    LogKey.table: .string(relation.table.description), LogKey.change: .string(step.description)])
            }
        case .stop(let change, let fix):
            throw TributaryError.schemaStop(change, fix: fix, source: source)
        }
        try ControlStore.recordStagingRelation(relation, stagingTable: stagingTable, source: source, at: point, on: connection)
    }
}
