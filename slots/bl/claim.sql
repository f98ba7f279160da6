SELECT 'qvp'::text AS source_system, cl.id::text AS source_id, k.contract_id,
       cl.reported_at, cl.amount, cl.description
FROM stg.qvp_claims cl
LEFT JOIN bl.contract k ON k.source_system = 'qvp' AND k.source_id = cl.policy_id::text
WHERE NOT cl._deleted
UNION ALL
SELECT 'svp', i.incident_id::text, k.contract_id, i.occurred, i.cost_estimate, i.report
FROM stg.svp_incidents i
LEFT JOIN bl.contract k ON k.source_system = 'svp' AND k.source_id = i.contract_id::text
WHERE NOT i._deleted
