-- A singular test: rows returned are failures.
select * from {{ ref('customer_orders') }} where total_amount < 0
