{% macro cents_to_dollars(column_name, scale=2) -%}
    {{ return(adapter.dispatch('cents_to_dollars')(column_name, scale)) }}
{%- endmacro %}

{% macro default__cents_to_dollars(column_name, scale) -%}
    round(cast({{ column_name }} as numeric) / 100, {{ scale }})
{%- endmacro %}

{% macro sqlite__cents_to_dollars(column_name, scale) -%}
    round(cast({{ column_name }} as real) / 100, {{ scale }})
{%- endmacro %}
