select city, sum(amount) as revenue from {{ ref('fact_transactions') }} group by city
