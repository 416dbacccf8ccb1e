{{ config(target='duck', compute='local') }}
-- Case 7: PostgreSQL + MariaDB + DuckDB sources, DuckDB target -> federation.
select o.officer_id, o.officer_name, k.country_name, r.region_name, e.full_name as manager
from {{ source('erp', 'dept_officers') }} o
join {{ source('erp', 'countries') }} k on k.country_code = o.country_code
left join {{ source('warehouse', 'dim_regions') }} r on r.region_id = k.region_id
left join {{ source('hr', 'employees') }} e on e.department_id = o.department_id and e.employee_id = o.officer_id
