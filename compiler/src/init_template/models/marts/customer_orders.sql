-- Federated: customers live in DuckDB, orders in SQLite. DVT reads only the
-- columns and rows it needs from each and joins them in its compute engine.
select
    c.customer_id,
    c.customer_name,
    count(o.id) as order_count,
    coalesce(sum(o.amount), 0) as total_amount
from {{ ref('stg_customers') }} c
left join {{ ref('raw_orders') }} o on o.customer_id = c.customer_id
group by c.customer_id, c.customer_name
