#!/usr/bin/env bash
# Captures pgoutput protocol-2 messages from a real PostgreSQL 15 as hex fixtures for the decoder's
# unit tests: Tests/TributaryCoreTests/Fixtures/pgoutput-v2.txt, one message per line as
# "<lsn> <hex>". Run again after changing the scenario below; the tests read the file.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${TMPDIR:-/tmp}/tributary-fixtures-$(id -u)
export PGPASSWORD=tributary
port=55701
deploy/tools/pg-cluster.sh stop "$work" 2>/dev/null || true
rm -rf "$work"
deploy/tools/pg-cluster.sh init "$work" $port --logical --fast
trap 'deploy/tools/pg-cluster.sh stop "$work"' EXIT
run() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $port -U postgres -d postgres "$@"; }
run <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE items (id int PRIMARY KEY, name text, mood mood, blob bytea, doc text);
ALTER TABLE items ALTER COLUMN doc SET STORAGE EXTERNAL;
CREATE TABLE audit (a int, b text);
ALTER TABLE audit REPLICA IDENTITY FULL;
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
CREATE PUBLICATION fixtures FOR TABLE items, audit, parent, child;
SELECT pg_create_logical_replication_slot('fixtures', 'pgoutput');

INSERT INTO items VALUES (1, 'one', 'happy', '\x00ff', repeat('x', 3000)), (2, NULL, 'sad', NULL, '');
UPDATE items SET name = 'uno' WHERE id = 1;              -- doc is unchanged TOAST: 'u'
UPDATE items SET id = 10 WHERE id = 2;                    -- key change: old key 'K'
DELETE FROM items WHERE id = 10;
INSERT INTO audit VALUES (1, 'a');
UPDATE audit SET b = 'b' WHERE a = 1;                     -- replica identity full: old row 'O'
DELETE FROM audit WHERE a = 1;
BEGIN;
INSERT INTO items VALUES (3, 'kept', 'sad', NULL, NULL);
SAVEPOINT s;
INSERT INTO items VALUES (4, 'rolled back', 'sad', NULL, NULL);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT pg_logical_emit_message(true, 'tributary', 'transactional');
SELECT pg_logical_emit_message(false, 'tributary', 'heartbeat');
INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1);
TRUNCATE parent, child RESTART IDENTITY CASCADE;
SQL
# A transaction larger than logical_decoding_work_mem is streamed before it commits; one of its
# subtransactions aborts. Then a streamed transaction that aborts entirely.
run <<'SQL'
BEGIN;
INSERT INTO items SELECT i, 'streamed ' || i, 'happy', NULL, NULL FROM generate_series(100, 400) i;
SAVEPOINT inner_one;
INSERT INTO items SELECT i, 'aborted sub ' || i, 'sad', NULL, NULL FROM generate_series(2000, 3000) i;
ROLLBACK TO SAVEPOINT inner_one;
INSERT INTO items VALUES (3000, 'after savepoint', 'happy', NULL, NULL);
COMMIT;
BEGIN;
INSERT INTO items SELECT i, 'never', 'sad', NULL, NULL FROM generate_series(5000, 6000) i;
ROLLBACK;
SQL
# The --fast cluster commits asynchronously; decoding reads only flushed WAL.
run -c "CHECKPOINT"
run -At -o Tests/TributaryCoreTests/Fixtures/pgoutput-v2.txt <<'SQL'
SET logical_decoding_work_mem = '64kB';
SELECT lsn || ' ' || encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('fixtures', NULL, NULL,
    'proto_version', '2', 'publication_names', 'fixtures', 'messages', 'true', 'streaming', 'on');
SQL
echo "wrote $(wc -l < Tests/TributaryCoreTests/Fixtures/pgoutput-v2.txt) messages" >&2
