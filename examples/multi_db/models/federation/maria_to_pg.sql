{{ config(materialized='view') }}
-- Case 3: MariaDB source, PostgreSQL target -> federation (the view is built as a table).
select country_code, country_name, region_id
from {{ source('erp', 'countries') }}
