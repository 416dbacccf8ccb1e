select * from {{ ref('raw_payments') }} where amount < 0
