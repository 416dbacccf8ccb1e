{{ config(target='lite', materialized='table') }}
-- SQLite only: pushdown on the legacy output.
select a.event_id, a.entity, a.action, l.customer_id
from {{ source('legacy', 'audit_log') }} a
left join {{ source('legacy', 'legacy_ids') }} l on l.customer_id = a.event_id
