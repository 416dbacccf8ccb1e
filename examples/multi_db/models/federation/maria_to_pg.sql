-- Case 3: MariaDB source, PostgreSQL target -> federation.
select country_code, country_name, region_id
from {{ source('erp', 'countries') }}
