SELECT 'qvp'::text AS source_system, v.vin::text AS source_id, v.make || ' ' || v.model AS label,
       v.model_year::integer AS build_year, v.mileage_km::numeric AS odometer_km, v.vin::text AS vin, p.party_id AS owner_party_id
FROM stg.qvp_vehicles v
LEFT JOIN bl.party p ON p.source_system = 'qvp' AND p.source_id = v.customer_id::text
WHERE NOT v._deleted
UNION ALL
SELECT 'svp', a.asset_id::text, a.label, a.build_year, a.odometer, a.vin, p.party_id
FROM stg.svp_assets a
LEFT JOIN bl.party p ON p.source_system = 'svp' AND p.source_id = a.client_no::text
WHERE NOT a._deleted
