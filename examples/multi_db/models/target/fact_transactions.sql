select f.txn_id, f.customer_id, c.city, f.pack_name, f.quantity, f.amount, f.txn_ts
from {{ ref('stg_fact_transactions') }} f
left join {{ ref('dim_customers') }} c on c.customer_id = f.customer_id
where f.amount >= {{ var('min_balance') }}
