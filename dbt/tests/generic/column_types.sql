{#-
    Schema: every column declared with a data_type in the model's YAML exists with that type
    (DuckDB's name for it, e.g. DECIMAL(15,2)). With strict=true, a column the YAML does not declare
    fails too. One failing row per offending column: column_name, declared_type, actual_type.
    Reads the catalog only, never the rows.
-#}
{% test column_types(model, strict=false) %}

{%- set problems = [] -%}
{%- if execute -%}
    {%- set declared = {} -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model'
        and node.alias | lower == model.identifier | lower
        and node.schema | lower == model.schema | lower -%}
        {%- for name, col in node.columns.items() if col.data_type -%}
            {%- do declared.update({name | lower: col.data_type | upper | replace(' ', '')}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set actual = {} -%}
    {%- for col in adapter.get_columns_in_relation(model) -%}
        {%- do actual.update({col.name | lower: col.dtype | upper | replace(' ', '')}) -%}
    {%- endfor -%}
    {%- for name, type in declared.items() if actual.get(name) != type -%}
        {%- do problems.append((name, type, actual.get(name, 'missing'))) -%}
    {%- endfor -%}
    {%- if strict -%}
        {%- for name, type in actual.items() if name not in declared -%}
            {%- do problems.append((name, 'undeclared', type)) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endif -%}

{%- if problems %}
    {%- for name, declared_type, actual_type in problems %}
select '{{ name }}' as column_name, '{{ declared_type }}' as declared_type, '{{ actual_type }}' as actual_type
        {%- if not loop.last %} union all {% endif %}
    {%- endfor %}
{%- else %}
select null as column_name, null as declared_type, null as actual_type where false
{%- endif %}

{% endtest %}
