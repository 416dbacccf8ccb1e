{{ config(schema='gold', tags=['TRGT']) }}
select officer_id, officer_name, department_name, country from {{ ref('c_officers') }}
