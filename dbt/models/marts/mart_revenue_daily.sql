{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        window_column='order_date',
        on_schema_change='fail',
    )
}}

with

order_lines as (

    select * from {{ ref('fct_order_lines') }}
    where {{ in_partition_window('order_date') }}

),

daily as (

    select
        order_date,
        sum(net_revenue) as revenue,
        count(distinct order_key) as order_count,
        count(distinct customer_key) as customer_count,
        count(*) as line_count
    from order_lines
    group by order_date

),

final as (

    select
        order_date,
        revenue,
        order_count,
        customer_count,
        line_count,
        cast(revenue / order_count as decimal(18, 4)) as average_order_value
    from daily

)

select * from final
