select a.*, d.department_name
from {{ ref('a_officers') }} a
left join {{ source('hr', 'departments') }} d on d.department_id = a.department_id
