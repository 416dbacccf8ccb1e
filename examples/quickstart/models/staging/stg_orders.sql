select
    id as order_id,
    customer_id,
    cast(order_date as date) as order_date,
    status,
    updated_at
from {{ ref('raw_orders') }}
