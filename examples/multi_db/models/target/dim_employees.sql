{{ config(materialized='incremental', unique_key='employee_id', incremental_strategy='merge', on_schema_change='fail') }}
select employee_id, full_name, department_id, salary, cast(updated_at as timestamp) as updated_at
from {{ source('hr', 'employees') }}
{% if is_incremental() %}
where cast(updated_at as timestamp) > (select coalesce(max(updated_at), cast('1900-01-01' as timestamp)) from {{ this }})
{% endif %}
