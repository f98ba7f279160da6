SELECT 'qvp'::text AS source_system, d.id::text AS source_id, k.contract_id,
       d.file_name AS name, d.mime_type, 'qvp/' || d.object_key AS object_key, d.uploaded_at
FROM stg.qvp_documents d
LEFT JOIN bl.contract k ON k.source_system = 'qvp' AND k.source_id = d.policy_id::text
WHERE NOT d._deleted
UNION ALL
SELECT 'svp', a.contract_id::text || '/' || a.seq::text, k.contract_id,
       a.name, NULL, 'svp/' || a.bucket_object, NULL
FROM stg.svp_attachments a
LEFT JOIN bl.contract k ON k.source_system = 'svp' AND k.source_id = a.contract_id::text
WHERE NOT a._deleted
