-- Case 1: PostgreSQL sources, PostgreSQL target -> pushdown.
select c.id, c.name, c.city, e.full_name as account_manager
from {{ source('crm', 'customers_db_1') }} c
join {{ source('hr', 'employees') }} e on e.employee_id = 1 + (c.id % 9)
