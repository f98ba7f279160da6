import Foundation

/// What the optional DDL event trigger on a source writes into the stream: after each DDL command
/// on a table, the table's columns with their catalog numbers, as a transactional logical message
/// (`pg_logical_emit_message`) in the DDL's own transaction, so the replicator reads the shape at
/// the exact position the change has among the rows; and a message when a table is dropped.
/// Without it the replicator identifies columns from the catalog as it is when it reads a change
/// (`ColumnIdentity`), which cannot tell every sequence of changes apart.
public struct DDLAnnouncement: Sendable, Equatable, Decodable {
    public static let prefix = "tributary.ddl"
    public static let function = "tributary_announce_ddl"
    public static let triggers = ["tributary_ddl_command_end", "tributary_ddl_sql_drop"]

    public struct Column: Sendable, Equatable, Decodable {
        public var attnum: Int
        public var name: String
    }

    public enum Event: String, Sendable, Decodable {
        /// A command changed the table: `columns` is its shape after it.
        case ddl
        /// The table was dropped.
        case drop
    }

    public var event: Event
    /// `ALTER TABLE`, `DROP TABLE`…
    public var tag: String?
    public var oid: UInt32
    /// `public.acc_lines`, as the trigger saw it.
    public var table: String?
    public var columns: [Column]?

    /// nil for a message that is not one (another prefix, or content this version cannot read).
    public static func decode(prefix: String, content: [UInt8]) -> DDLAnnouncement? {
        guard prefix == Self.prefix else { return nil }
        return try? JSONDecoder().decode(DDLAnnouncement.self, from: Data(content))
    }

    /// What an administrator runs once on a source (as a superuser: event triggers need one). The
    /// function is SECURITY DEFINER so a DDL by any role can emit the message.
    public static let installSQL = """
        CREATE OR REPLACE FUNCTION public.\(function)() RETURNS event_trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $tributary$
        DECLARE
          command record;
        BEGIN
          IF TG_EVENT = 'ddl_command_end' THEN
            FOR command IN SELECT DISTINCT c.objid, c.command_tag, c.object_identity FROM pg_event_trigger_ddl_commands() c
                           JOIN pg_class r ON r.oid = c.objid WHERE c.classid = 'pg_class'::regclass AND r.relkind IN ('r', 'p') LOOP
              PERFORM pg_logical_emit_message(true, '\(prefix)', json_build_object(
                'event', 'ddl', 'tag', command.command_tag, 'oid', command.objid::bigint, 'table', command.object_identity,
                'columns', (SELECT coalesce(json_agg(json_build_object('attnum', a.attnum, 'name', a.attname) ORDER BY a.attnum), '[]')
                            FROM pg_attribute a WHERE a.attrelid = command.objid AND a.attnum > 0 AND NOT a.attisdropped))::text);
            END LOOP;
          ELSIF TG_EVENT = 'sql_drop' THEN
            FOR command IN SELECT d.objid, d.object_identity FROM pg_event_trigger_dropped_objects() d
                           WHERE d.classid = 'pg_class'::regclass AND d.object_type IN ('table', 'partitioned table') LOOP
              PERFORM pg_logical_emit_message(true, '\(prefix)', json_build_object(
                'event', 'drop', 'tag', 'DROP TABLE', 'oid', command.objid::bigint, 'table', command.object_identity)::text);
            END LOOP;
          END IF;
        END
        $tributary$;
        DROP EVENT TRIGGER IF EXISTS \(triggers[0]);
        CREATE EVENT TRIGGER \(triggers[0]) ON ddl_command_end EXECUTE FUNCTION public.\(function)();
        DROP EVENT TRIGGER IF EXISTS \(triggers[1]);
        CREATE EVENT TRIGGER \(triggers[1]) ON sql_drop EXECUTE FUNCTION public.\(function)();
        """

    /// How many of the triggers are there and enabled (both, or the announcements are not whole).
    public static let installedSQL = """
        SELECT count(*) FROM pg_event_trigger WHERE evtname IN ('\(triggers[0])', '\(triggers[1])') AND evtenabled <> 'D'
        """
}
