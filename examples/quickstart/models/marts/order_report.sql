-- Lives on the SQLite `reporting` output; reads DuckDB tables, so DVT federates it.
select
    c.customer_id,
    c.first_name,
    c.number_of_orders,
    c.lifetime_value
from {{ ref('customers') }} c
where c.number_of_orders > 0
