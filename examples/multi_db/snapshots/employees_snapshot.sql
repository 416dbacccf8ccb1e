{% snapshot employees_snapshot %}
{{ config(target_schema='snapshots', unique_key='employee_id', strategy='timestamp', updated_at='updated_at') }}
select * from {{ source('hr', 'employees') }}
{% endsnapshot %}
