with all_txns as (
    select * from {{ ref('transactions_1') }}
    union all
    select * from {{ ref('transactions_2') }}
    union all
    select * from {{ ref('transactions_3') }}
)
select t.txn_id, t.customer_id, t.pack_id, p.pack_name, t.quantity, t.amount, t.txn_ts
from all_txns t
join {{ ref('packs_db') }} p on p.pack_id = t.pack_id
