SELECT 'svp'::text AS source_system, v.visit_id::text AS source_id, a.asset_id,
       v.visited_on, v.duration, v.parts, v.notes
FROM stg.svp_service_visits v
LEFT JOIN bl.insured_asset a ON a.source_system = 'svp' AND a.source_id = v.asset_id::text
WHERE NOT v._deleted
