-- MariaDB -> PostgreSQL: the base of the ERP pipeline is federated.
select officer_id, officer_name, department_id, country_code, active
from {{ source('erp', 'dept_officers') }}
