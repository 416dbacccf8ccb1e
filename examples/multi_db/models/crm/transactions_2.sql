select txn_id, customer_id, pack_id, quantity, amount, txn_ts
from {{ source('crm', 'transactions_b') }}
