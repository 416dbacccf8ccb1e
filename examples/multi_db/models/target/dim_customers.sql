select id as customer_id, name, surname, city, created_at from {{ ref('customer_1') }}
union all
select id, name, surname, city, created_at from {{ ref('customer_2') }}
