-- Case 2: PostgreSQL + DuckDB sources, PostgreSQL target -> federation.
select p.pack_id, p.pack_name, c.category_name, p.unit_price
from {{ source('crm', 'packs') }} p
left join {{ source('warehouse', 'dim_categories') }} c on c.category_id = p.category_id
where p.unit_price > 5
