{{ config(target='duck') }}
-- Case 4: DuckDB sources, DuckDB target -> pushdown.
select r.region_id, r.region_name, c.category_id, c.category_name
from {{ source('warehouse', 'dim_regions') }} r
cross join {{ source('warehouse', 'dim_categories') }} c
