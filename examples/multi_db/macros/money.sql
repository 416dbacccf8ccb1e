{% macro money(column) -%}
    {{ return(adapter.dispatch('money')(column)) }}
{%- endmacro %}

{% macro default__money(column) -%}
    cast({{ column }} as numeric(12, 2))
{%- endmacro %}

{% macro mysql__money(column) -%}
    cast({{ column }} as decimal(12, 2))
{%- endmacro %}
