SELECT 'qvp'::text AS source_system, p.id::text AS source_id, p.policy_no AS contract_no,
       pa.party_id, ia.asset_id,
       p.status AS status,
       p.premium AS annual_premium,
       lower(p.valid_during)::date AS starts_on, upper(p.valid_during)::date AS ends_on,
       cov.coverages, cov.total_limit
FROM stg.qvp_policies p
LEFT JOIN bl.party pa ON pa.source_system = 'qvp' AND pa.source_id = p.customer_id::text
LEFT JOIN bl.insured_asset ia ON ia.source_system = 'qvp' AND ia.source_id = p.vin::text
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object('code', c.coverage_code, 'limit', c.limit_amount, 'deductible', c.deductible)
                     ORDER BY c.coverage_code) AS coverages,
           sum(c.limit_amount) AS total_limit
    FROM stg.qvp_policy_coverages c
    WHERE c.policy_id = p.id AND NOT c._deleted
) cov ON true
WHERE NOT p._deleted
UNION ALL
-- SVP's contract states in QVP's words.
SELECT 'svp', k.contract_id::text, k.contract_id::text, pa.party_id, ia.asset_id,
       CASE k.state WHEN 'DRAFT' THEN 'quoted' WHEN 'RUNNING' THEN 'active' WHEN 'SUSPENDED' THEN 'lapsed' WHEN 'ENDED' THEN 'cancelled' END,
       round((k.monthly_fee * 12)::numeric, 2), k.starts_on, k.ends_on, NULL::jsonb, NULL::numeric
FROM stg.svp_contracts k
LEFT JOIN bl.party pa ON pa.source_system = 'svp' AND pa.source_id = k.client_no::text
LEFT JOIN bl.insured_asset ia ON ia.source_system = 'svp' AND ia.source_id = k.asset_id::text
WHERE NOT k._deleted
