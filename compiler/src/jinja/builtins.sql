{# Macros of package `dbt` that dbt's own files (dbt/, loaded first) leave to other adapters:
   MySQL/MariaDB, SQLite, Snowflake and Databricks forms, and DVT's helpers. Projects may override any of them. #}

{% macro current_timestamp() -%}{{ return(adapter.dispatch('current_timestamp', 'dbt')()) }}{%- endmacro %}
{% macro default__current_timestamp() -%}current_timestamp{%- endmacro %}
{% macro sqlite__current_timestamp() -%}datetime('now'){%- endmacro %}
{% macro duckdb__current_timestamp() -%}now(){%- endmacro %}
{% macro snowflake__current_timestamp() -%}convert_timezone('UTC', current_timestamp()){%- endmacro %}

{#- dbt-adapters' global_project/macros/adapters/timestamps.sql (the parts that need no database). -#}
{%- macro snapshot_get_time() -%}
    {{ adapter.dispatch('snapshot_get_time', 'dbt')() }}
{%- endmacro -%}

{% macro default__snapshot_get_time() %}
    {{ current_timestamp() }}
{% endmacro %}

{% macro duckdb__snapshot_get_time() -%}
  {{ current_timestamp() }}::timestamp
{%- endmacro %}

{% macro current_timestamp_backcompat() %}
    {{ return(adapter.dispatch('current_timestamp_backcompat', 'dbt')()) }}
{% endmacro %}

{% macro default__current_timestamp_backcompat() %}
    current_timestamp::timestamp
{% endmacro %}

{% macro current_timestamp_in_utc_backcompat() %}
    {{ return(adapter.dispatch('current_timestamp_in_utc_backcompat', 'dbt')()) }}
{% endmacro %}

{% macro default__current_timestamp_in_utc_backcompat() %}
    {{ return(adapter.dispatch('current_timestamp_backcompat', 'dbt')()) }}
{% endmacro %}

{% macro mysql__type_string() -%}text{%- endmacro %}
{% macro sqlite__type_string() -%}text{%- endmacro %}
{% macro databricks__type_string() -%}string{%- endmacro %}

{% macro mysql__type_timestamp() -%}datetime{%- endmacro %}
{% macro snowflake__type_timestamp() -%}timestamp_ntz{%- endmacro %}

{% macro mysql__type_int() -%}signed{%- endmacro %}

{% macro mysql__type_bigint() -%}signed{%- endmacro %}

{% macro mysql__type_float() -%}double{%- endmacro %}

{% macro mysql__type_numeric() -%}decimal(28, 6){%- endmacro %}

{% macro snowflake__safe_cast(field, type) -%}try_cast({{ field }} as {{ type }}){%- endmacro %}
{% macro databricks__safe_cast(field, type) -%}try_cast({{ field }} as {{ type }}){%- endmacro %}

{% macro mysql__concat(fields) -%}concat({{ fields | join(', ') }}){%- endmacro %}

{% macro mysql__hash(field) -%}md5(cast({{ field }} as char)){%- endmacro %}

{% macro mysql__dateadd(datepart, interval, from_date_or_timestamp) -%}date_add({{ from_date_or_timestamp }}, interval {{ interval }} {{ datepart }}){%- endmacro %}
{% macro sqlite__dateadd(datepart, interval, from_date_or_timestamp) -%}datetime({{ from_date_or_timestamp }}, '+' || ({{ interval }}) || ' {{ datepart }}'){%- endmacro %}

{% macro mysql__datediff(first_date, second_date, datepart) -%}timestampdiff({{ datepart }}, {{ first_date }}, {{ second_date }}){%- endmacro %}

{% macro mysql__listagg(measure, delimiter_text, order_by_clause, limit_num) -%}group_concat({{ measure }}{% if order_by_clause %} {{ order_by_clause }}{% endif %} separator {{ delimiter_text }}){%- endmacro %}

{% macro mysql__bool_or(expression) -%}max({{ expression }}){%- endmacro %}

{% macro is_incremental_full_refresh() -%}{{ return(flags.FULL_REFRESH) }}{%- endmacro %}

