{{ config(target='duck') }}
-- Case 5: PostgreSQL source, DuckDB target -> federation.
select id, name, surname, city
from {{ source('crm', 'customers_db_1') }}
where city = 'Riyadh'
