-- Demo data for QVP; psql -v scale=N. Deterministic (setseed) so runs compare.
SELECT setseed(0.42);
\set customers (2000 * :scale)

INSERT INTO customers (first_name, last_name, email, phone, birth_date, created_at, tags, preferences)
SELECT (ARRAY['Anna','Björn','Chloé','Dmitri','Eva','François','Günther','Hana','Ítalo','Jürgen'])[1 + i % 10],
       (ARRAY['Müller','O''Brien','Nowak','Şahin','van der Berg','García','Smith, Jr.','Kowalski'])[1 + i % 8],
       CASE WHEN i % 7 = 0 THEN NULL WHEN i % 13 = 0 THEN '' ELSE 'customer' || i || '@example.com' END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE '+49 30 ' || (1000000 + i) END,
       date '1950-01-01' + (i * 37) % 20000,
       timestamptz '2015-01-01 00:00:00+00' + (i || ' hours')::interval,
       CASE WHEN i % 4 = 0 THEN NULL ELSE ARRAY['retail', CASE WHEN i % 3 = 0 THEN 'fleet' END, 'newsletter'] END,
       CASE WHEN i % 6 = 0 THEN NULL ELSE jsonb_build_object('lang', (ARRAY['de','en','fr'])[1 + i % 3], 'paperless', i % 2 = 0,
                                                            'channels', jsonb_build_array('mail', 'sms')) END
FROM generate_series(1, :customers) AS i;

INSERT INTO vehicles (vin, customer_id, make, model, model_year, mileage_km, first_registered, features)
SELECT upper(substr(md5('vin' || i), 1, 17)), 1 + (i * 7) % :customers,
       (ARRAY['VW','BMW','Škoda','Renault','Toyota'])[1 + i % 5], 'Model ' || (i % 40),
       (2005 + i % 19)::smallint, CASE WHEN i % 9 = 0 THEN NULL ELSE (i * 131) % 300000 END,
       date '2005-03-01' + (i * 11) % 6500,
       CASE WHEN i % 3 = 0 THEN '{}'::text[] ELSE ARRAY['abs', 'navi', NULL, 'tow "hitch"'] END
FROM generate_series(1, :customers * 3 / 2) AS i;

INSERT INTO policies (policy_no, customer_id, vin, status, premium, valid_during, issued_at)
SELECT 'QVP-' || lpad(i::text, 8, '0'), v.customer_id, v.vin,
       (ARRAY['quoted','active','active','lapsed','cancelled']::policy_status[])[1 + i % 5],
       round((200 + (i * 17) % 1800)::numeric + 0.99, 2),
       tstzrange(timestamptz '2020-01-01+00' + (i % 1000 || ' days')::interval,
                 CASE WHEN i % 10 = 0 THEN NULL ELSE timestamptz '2021-01-01+00' + (i % 1000 || ' days')::interval END),
       timestamptz '2019-12-15 08:30:00+01' + (i || ' minutes')::interval
FROM generate_series(1, :customers * 3 / 2) AS i
JOIN vehicles v ON v.vin = upper(substr(md5('vin' || i), 1, 17));

INSERT INTO policy_coverages (policy_id, coverage_code, limit_amount, deductible)
SELECT p.id, c.code, (p.id % 50 + 1) * 10000, CASE WHEN c.code = 'LIAB' THEN NULL ELSE 150 + p.id % 5 * 50 END
FROM policies p CROSS JOIN (VALUES ('LIAB'), ('COMP'), ('GLASS')) AS c(code)
WHERE c.code = 'LIAB' OR p.id % 3 <> 0;

INSERT INTO claims (policy_id, reported_at, amount, description, adjuster_notes, location)
SELECT 1 + (i * 13) % (:customers * 3 / 2), timestamptz '2021-06-01+00' + (i * 5 || ' hours')::interval,
       round(((i * 97) % 25000)::numeric / 3, 2),
       CASE WHEN i % 40 = 0
            -- A large, incompressible value: stored out of line (TOAST).
            THEN (SELECT string_agg(md5(i::text || '-' || j), ' ') FROM generate_series(1, 400) AS j)
            ELSE 'Damage report ' || i || E': rear bumper, "minor";\nwitness: none, value ~ ' || (i % 900) || ' EUR' END,
       CASE WHEN i % 3 = 0 THEN NULL WHEN i % 11 = 0 THEN '' ELSE E'Checked\ton site \\ ok' END,
       point(13.4 + (i % 100) / 1000.0, 52.5 + (i % 77) / 1000.0)
FROM generate_series(1, :customers) AS i;

INSERT INTO documents (id, policy_id, file_name, mime_type, thumbnail, object_key, uploaded_at)
SELECT md5('doc' || i)::uuid, 1 + (i * 3) % (:customers * 3 / 2), 'scan_' || i || '.pdf', 'application/pdf',
       CASE WHEN i % 5 = 0 THEN NULL ELSE decode(md5('thumb' || i) || '00ff00' || md5('t' || i), 'hex') END,
       'qvp-docs/' || (i % 97) || '/scan_' || i || '.pdf', timestamptz '2022-01-01+00' + (i || ' minutes')::interval
FROM generate_series(1, :customers) AS i;
ANALYZE;
