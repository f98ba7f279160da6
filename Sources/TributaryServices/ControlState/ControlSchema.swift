import TributaryCore
import TributaryPostgres

/// The `tributary` schema in the target: all pipeline state lives here (DESIGN.md §5), so any
/// process can stop and another take over from what the database says. Its tables are read and
/// written by `ControlStore` only; the commands that write migrate it (`TargetEndpoint.openControl`), the
/// ones that only read (status, verify, a metrics scrape) never do.
enum ControlSchema {
    /// Ordered migrations; a migration never changes once released.
    static let migrations: [String] = [
        """
        CREATE TABLE tributary.sources (
            source text PRIMARY KEY,
            slot text NOT NULL,
            state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'paused', 'draining', 'drained')),
            snapshot_lsn pg_lsn,
            flushed_lsn pg_lsn,
            flushed_commit_time timestamptz,
            applied_lsn pg_lsn,
            applied_commit_time timestamptz,
            drain_lsn pg_lsn,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE tributary.snapshots (
            source text NOT NULL,
            snapshot_lsn pg_lsn NOT NULL,
            slot text NOT NULL,
            state text NOT NULL CHECK (state IN ('loading', 'applied')),
            tables integer NOT NULL,
            rows bigint NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            PRIMARY KEY (source, snapshot_lsn)
        );
        CREATE TABLE tributary.snapshot_parts (
            source text NOT NULL,
            snapshot_lsn pg_lsn NOT NULL,
            object_key text NOT NULL,
            rows bigint NOT NULL,
            loaded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, snapshot_lsn, object_key)
        );
        CREATE TABLE tributary.snapshot_tables (
            source text NOT NULL,
            snapshot_lsn pg_lsn NOT NULL,
            stg_table text NOT NULL,
            source_table text NOT NULL,
            rows bigint NOT NULL,
            finished_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, snapshot_lsn, stg_table)
        );
        CREATE TABLE tributary.applied_batches (
            source text NOT NULL,
            end_lsn pg_lsn NOT NULL,
            start_lsn pg_lsn NOT NULL,
            rows bigint NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, end_lsn)
        );
        """,
        // The newest TRUNCATE applied per STG table: changes older than it are void, whatever order
        // batches arrive in, so a replay can never bring back a truncated row STG never saw.
        """
        CREATE TABLE tributary.truncations (
            stg_table text PRIMARY KEY,
            lsn pg_lsn NOT NULL
        );
        """,
        // Pause may hold the applier as well as the replicator; drain remembers when it began.
        """
        ALTER TABLE tributary.sources ADD COLUMN apply_paused boolean NOT NULL DEFAULT false,
            ADD COLUMN drain_started_at timestamptz;
        """,
        // BL models: per model its last runs and error; per model and input the watermark up to which
        // the input's changes are in the model (an STG input's _lsn, a model input's change-log
        // sequence) and the snapshot its STG table came from (a new one means a full reload).
        createSchemas(["bl", "tributary_bl"]) + """
        CREATE SEQUENCE tributary.bl_seq;
        CREATE TABLE tributary.bl_models (
            model text PRIMARY KEY,
            needs_full boolean NOT NULL DEFAULT false,
            reloaded_at timestamptz,
            run_at timestamptz,
            as_of timestamptz,
            failed_at timestamptz,
            error text,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE tributary.bl_watermarks (
            model text NOT NULL,
            input text NOT NULL,
            lsn pg_lsn,
            seq bigint,
            epoch pg_lsn,
            PRIMARY KEY (model, input)
        );
        """,
        // Object sync: per mapping its last (or running) pass and where it got to; what was copied
        // for each name (a multipart object's MD5 is no content hash: this is what vouches for it);
        // the target's extra objects found by a pass, deleted at its end if the pass went well.
        // Names sort in byte order, as Object Storage lists them.
        """
        CREATE TABLE tributary.object_passes (
            mapping text PRIMARY KEY,
            state text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            position text COLLATE "C",
            listed bigint NOT NULL DEFAULT 0,
            copied bigint NOT NULL DEFAULT 0,
            copied_bytes bigint NOT NULL DEFAULT 0,
            replaced bigint NOT NULL DEFAULT 0,
            failed bigint NOT NULL DEFAULT 0,
            pending bigint NOT NULL DEFAULT 0,
            pending_bytes bigint NOT NULL DEFAULT 0,
            extra bigint NOT NULL DEFAULT 0,
            deleted bigint NOT NULL DEFAULT 0,
            error text
        );
        CREATE TABLE tributary.object_copies (
            mapping text NOT NULL,
            name text COLLATE "C" NOT NULL,
            source_size bigint NOT NULL,
            source_md5 text,
            source_etag text,
            target_etag text,
            copied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (mapping, name)
        );
        CREATE TABLE tributary.object_extras (
            mapping text NOT NULL,
            name text COLLATE "C" NOT NULL,
            size bigint NOT NULL,
            PRIMARY KEY (mapping, name)
        );
        """,
        // Per-table snapshots: a snapshot's scope (a table snapshot never moves a source's stream
        // position), and whether a table was merged into STG (BL readers then take in the changed
        // rows) or swapped in whole (BL readers reload).
        """
        ALTER TABLE tributary.snapshots ADD COLUMN kind text NOT NULL DEFAULT 'full' CHECK (kind IN ('full', 'tables'));
        ALTER TABLE tributary.snapshot_tables ADD COLUMN merged boolean NOT NULL DEFAULT false;
        """,
        // Retention: what each source's part of the staging store held at the last collection, and
        // what collections removed so far (status shows it without listing the store).
        """
        CREATE TABLE tributary.store_usage (
            source text PRIMARY KEY,
            objects bigint NOT NULL,
            bytes bigint NOT NULL,
            removed_objects bigint NOT NULL DEFAULT 0,
            removed_bytes bigint NOT NULL DEFAULT 0,
            measured_at timestamptz NOT NULL DEFAULT now()
        );
        """,
        // The cutover gate: a verify holds a source's STG at one point while it compares (the
        // applier says when it holds exactly there), and the relationships' last count.
        """
        ALTER TABLE tributary.sources ADD COLUMN hold_lsn pg_lsn, ADD COLUMN held_lsn pg_lsn, ADD COLUMN hold_started_at timestamptz,
            ADD COLUMN hold_until timestamptz;
        CREATE TABLE tributary.reference_checks (
            model text NOT NULL,
            reference text NOT NULL,
            orphans bigint NOT NULL,
            sample text[] NOT NULL DEFAULT '{}',
            checked_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (model, reference)
        );
        """,
        // Schema changes on the sources: the shape each STG table last followed (columns with their
        // catalog numbers), what was followed, where a source stopped for its operator, and the
        // table snapshots the pipeline takes by itself (values no change carried).
        """
        CREATE TABLE tributary.staging_relations (
            stg_table text PRIMARY KEY,
            source text NOT NULL,
            source_table text NOT NULL,
            source_oid oid,
            relation jsonb NOT NULL,
            lsn pg_lsn NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE tributary.schema_changes (
            id bigserial PRIMARY KEY,
            source text NOT NULL,
            stg_table text NOT NULL,
            source_table text NOT NULL,
            kind text NOT NULL,
            change text NOT NULL,
            statements text[] NOT NULL DEFAULT '{}',
            lsn pg_lsn NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ON tributary.schema_changes (source, applied_at);
        CREATE TABLE tributary.schema_stops (
            source text NOT NULL,
            part text NOT NULL,
            change text NOT NULL,
            fix text NOT NULL,
            since timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, part)
        );
        CREATE TABLE tributary.resync_requests (
            source text NOT NULL,
            source_table text NOT NULL,
            reason text NOT NULL,
            lsn pg_lsn NOT NULL,
            requested_at timestamptz NOT NULL DEFAULT now(),
            snapshot_lsn pg_lsn,
            done_at timestamptz,
            PRIMARY KEY (source, source_table, lsn)
        );
        CREATE TABLE tributary.partition_sets (
            source text NOT NULL,
            source_table text NOT NULL,
            partitions text[] NOT NULL,
            PRIMARY KEY (source, source_table)
        );
        """,
        // The last verify's result, for the status page.
        """
        CREATE TABLE tributary.verifications (
            id bigserial PRIMARY KEY,
            finished_at timestamptz NOT NULL DEFAULT now(),
            matches boolean NOT NULL,
            tables integer NOT NULL,
            differing text[] NOT NULL DEFAULT '{}',
            points jsonb NOT NULL DEFAULT '[]'
        );
        """,
        // An STG table the applier created empty (its table joined after the snapshot) waits for
        // its first copy; its files wait with it, replayed over the copy (`TablePromotion.replayDeferredFiles`).
        """
        CREATE TABLE tributary.awaiting_copy (
            stg_table text PRIMARY KEY,
            source text NOT NULL,
            since pg_lsn NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE tributary.deferred_files (
            stg_table text NOT NULL,
            source text NOT NULL,
            batch_end pg_lsn NOT NULL,
            position integer NOT NULL,
            file jsonb NOT NULL,
            PRIMARY KEY (stg_table, batch_end, position)
        );
        """,
    ]

    /// Creates the schemas that do not exist yet. `CREATE SCHEMA IF NOT EXISTS` asks for CREATE on
    /// the database even when the schema is there, which a least-privilege role owning schemas an
    /// administrator made for it does not have.
    static func createSchemas(_ names: [String]) -> String {
        names.map { name in
            "DO $$ BEGIN IF to_regnamespace(\(SQL.literal(SQL.identifier(name)))) IS NULL THEN CREATE SCHEMA \(SQL.identifier(name)); END IF; END $$;\n"
        }.joined()
    }

    /// Any number of processes may call this at once; an advisory lock serialises them.
    static func migrate(on connection: isolated PostgresConnection) throws {
        try connection.transaction { connection in
            try connection.execute("SELECT pg_advisory_xact_lock(\(advisoryLockMigrations))")
            try connection.execute(createSchemas(["tributary", StagingColumns.schema, StagingColumns.loadSchema]) + """
                CREATE TABLE IF NOT EXISTS tributary.schema_version (version integer NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now())
                """)
            let current = try connection.query("SELECT coalesce(max(version), 0) FROM tributary.schema_version").scalar(Int.self)
            guard current <= migrations.count else {
                throw TributaryError(.version, "the target's tributary schema is version \(current), newer than this tributary knows (\(migrations.count)): upgrade tributary")
            }
            for version in current..<migrations.count {
                try connection.execute(migrations[version])
                try connection.query("INSERT INTO tributary.schema_version (version) VALUES ($1)", [String(version + 1)])
            }
        }
    }

    /// The schema version the target holds; 0 when no writing command has run against it yet.
    static func version(on connection: isolated PostgresConnection) throws -> Int {
        guard try connection.query("SELECT to_regclass('tributary.schema_version') IS NOT NULL").scalar(Bool.self) else { return 0 }
        return try connection.query("SELECT coalesce(max(version), 0) FROM tributary.schema_version").scalar(Int.self)
    }

    static let advisoryLockMigrations: Int64 = 0x7472_6962_0001
}
