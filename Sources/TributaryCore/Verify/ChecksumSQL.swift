/// The row-content checksum `verify` computes identically on source and STG: a count and the sum of
/// the first 64 bits of each row's md5 over its text form. The sum is order-independent, so neither
/// side sorts; keys are unique, so equal rows cannot cancel out.
public enum ChecksumSQL {
    public static func checksum(table: QualifiedName, columns: [String], excludeTombstones: Bool) -> String {
        let row = "ROW(\(SQL.identifierList(columns)))::text"
        let filter = excludeTombstones ? " WHERE NOT \(SQL.identifier(StagingColumns.deleted))" : ""
        return """
            SELECT count(*) AS rows, \
            coalesce(sum(('x' || substr(md5(\(row)), 1, 16))::bit(64)::bigint::numeric), 0) AS checksum \
            FROM \(table.sql)\(filter)
            """
    }
}
