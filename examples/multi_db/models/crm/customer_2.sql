select id, name, surname, city, cast(created_at as date) as created_at
from {{ source('crm', 'customers_db_2') }}
