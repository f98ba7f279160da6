-- Demo data for SVP; psql -v scale=N. Deterministic.
SELECT setseed(0.17);
\set clients (1500 * :scale)

INSERT INTO svp.clients (client_no, full_name, email_address, mobile, date_of_birth, registered, segment, attributes)
SELECT 'C' || lpad(i::text, 9, '0'),
       (ARRAY['Anna Müller','Björn O''Brien','Zoë Nowak','Łukasz Şahin','Emma van der Berg'])[1 + i % 5] || ' ' || i,
       CASE WHEN i % 9 = 0 THEN NULL ELSE 'c' || i || '@svp.example' END,
       CASE WHEN i % 4 = 0 THEN '' ELSE '+43 1 ' || (500000 + i) END,
       timestamp '1948-05-01 00:00' + (i * 3571 || ' minutes')::interval * 60,
       timestamptz '2016-03-01 12:00:00+02' + (i || ' hours')::interval,
       (ARRAY['A','B','C',NULL])[1 + i % 4],
       CASE WHEN i % 5 = 0 THEN NULL ELSE json_build_object('vip', i % 17 = 0, 'source', 'svp', 'note', E'line1\nline2') END
FROM generate_series(1, :clients) AS i;

INSERT INTO svp.assets (client_no, vin, label, build_year, odometer, checksums)
SELECT 'C' || lpad((1 + (i * 5) % :clients)::text, 9, '0'),
       CASE WHEN i % 6 = 0 THEN NULL ELSE upper(substr(md5('svin' || i), 1, 17)) END,
       'Asset #' || i || ', "fleet"', 2000 + i % 24, ((i * 337) % 400000)::numeric / 10,
       CASE WHEN i % 3 = 0 THEN NULL ELSE ARRAY[decode(md5('a' || i), 'hex'), NULL, '\x00'::bytea] END
FROM generate_series(1, :clients * 2) AS i;

INSERT INTO svp.contracts (contract_id, client_no, asset_id, state, monthly_fee, starts_on, ends_on, terms, options)
SELECT md5('contract' || i)::uuid, a.client_no, a.asset_id,
       (ARRAY['DRAFT','RUNNING','RUNNING','SUSPENDED','ENDED']::svp.contract_state[])[1 + i % 5],
       CASE WHEN i % 50 = 0 THEN 'NaN'::float8 ELSE 19.99 + (i % 300) / 7.0 END,
       date '2018-01-01' + i % 2000, CASE WHEN i % 3 = 0 THEN NULL ELSE date '2024-01-01' + i % 900 END,
       CASE WHEN i % 30 = 0 THEN (SELECT string_agg(md5('terms' || i || j), E'\n') FROM generate_series(1, 300) AS j)
            ELSE 'Standard terms v' || (i % 4) END,
       jsonb_build_object('roadside', i % 2 = 0, 'limits', jsonb_build_array(i % 10, NULL, 2.5))
FROM generate_series(1, :clients * 2) AS i
JOIN svp.assets a ON a.asset_id = i;

INSERT INTO svp.incidents (incident_id, contract_id, occurred, cost_estimate, severity, report, geo)
SELECT 900000 + i, md5('contract' || (1 + (i * 7) % (:clients * 2)))::uuid,
       timestamptz '2020-02-29 23:59:59.999999+00' + (i * 7 || ' hours')::interval,
       CASE WHEN i % 23 = 0 THEN 'NaN'::numeric ELSE round(((i * 7919) % 1000000)::numeric / 100, 2) END,
       (i % 5)::smallint,
       CASE WHEN i % 8 = 0 THEN NULL ELSE 'Incident ' || i || E': \\N is not null, NULL is text; "quoted", comma' END,
       ARRAY[48.2 + (i % 100) / 1000.0, 16.37 + (i % 50) / 1000.0]
FROM generate_series(1, :clients) AS i;

INSERT INTO svp.attachments (contract_id, seq, name, bucket_object, size_bytes, sha1)
SELECT c.contract_id, s, 'photo_' || s || '.jpg', 'svp-files/' || c.contract_id || '/' || s, 10000 + s * 123,
       decode(substr(md5(c.contract_id::text || s) || md5('x'), 1, 40), 'hex')
FROM svp.contracts c CROSS JOIN generate_series(1, 2) AS s;

INSERT INTO svp.service_visits (asset_id, visited_on, duration, parts, notes)
SELECT 1 + (i * 3) % (:clients * 2), date '2019-01-01' + i % 2100, ((i % 300) || ' minutes')::interval + interval '1 day' * (i % 2),
       CASE WHEN i % 4 = 0 THEN NULL ELSE ARRAY['oil', 'filter', CASE WHEN i % 2 = 0 THEN 'brake pads' END] END,
       CASE WHEN i % 10 = 0 THEN '' ELSE 'Visit ' || i END
FROM generate_series(1, :clients * 2) AS i;
ANALYZE;
