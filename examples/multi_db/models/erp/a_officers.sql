select officer_id, officer_name, department_id, country_code
from {{ ref('bv_dept_officers') }}
where active
