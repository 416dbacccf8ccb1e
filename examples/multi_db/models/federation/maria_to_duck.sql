{{ config(target='duck') }}
-- Case 6: MariaDB source, DuckDB target -> federation.
select country_code, country_name from {{ source('erp', 'countries') }}
