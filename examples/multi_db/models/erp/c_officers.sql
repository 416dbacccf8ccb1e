{{ config(materialized='view') }}
select b.*, upper(country_code) as country from {{ ref('b_officers') }} b
