SELECT 'qvp'::text AS source_system, c.id::text AS source_id,
       c.first_name || ' ' || c.last_name AS name, nullif(c.email, '') AS email, c.phone,
       c.birth_date, c.created_at AS registered_at
FROM stg.qvp_customers c
WHERE NOT c._deleted
UNION ALL
SELECT 'svp', cl.client_no::text, cl.full_name::text, nullif(cl.email_address, '')::text, cl.mobile::text,
       cl.date_of_birth::date, cl.registered
FROM stg.svp_clients cl
WHERE NOT cl._deleted
