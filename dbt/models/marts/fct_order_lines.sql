{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        window_column='order_date',
        on_schema_change='fail',
    )
}}

-- A fact is loaded after its dimensions (its foreign keys are tested against them):
-- depends_on: {{ ref('dim_customer') }}
-- depends_on: {{ ref('dim_part') }}
-- depends_on: {{ ref('dim_supplier') }}
-- depends_on: {{ ref('dim_customer_history') }}

with

line_items as (

    select * from {{ ref('stg_tpch__lineitem') }}
    where {{ in_partition_window('order_date') }}

),

orders as (

    select * from {{ ref('stg_tpch__orders') }}
    where {{ in_partition_window('order_date') }}

),

-- the customer's version on the order date; an order before the history starts takes the first
-- version (history is kept from the first snapshot on)
customer_versions as (

    select * from {{ ref('dim_customer_history') }}

),

final as (

    select
        line_items.order_key,
        line_items.line_number,
        line_items.order_date,
        orders.customer_key,
        line_items.part_key,
        line_items.supplier_key,
        line_items.quantity,
        line_items.extended_price,
        line_items.discount,
        line_items.tax,
        line_items.return_flag,
        line_items.line_status,
        line_items.ship_date,
        line_items.commit_date,
        line_items.receipt_date,
        line_items.ship_mode,
        orders.order_priority,
        orders.order_status,
        orders.ship_priority,
        line_items.extended_price * (1 - line_items.discount) as net_revenue,
        customer_versions.market_segment as customer_market_segment_at_order
    from line_items
    -- left join: a line item whose order is missing keeps its row and fails the not_null tests
    left join orders on line_items.order_key = orders.order_key
    left join customer_versions
        on orders.customer_key = customer_versions.customer_key
        and orders.order_date < coalesce(customer_versions.valid_to, date '9999-12-31')
        and (orders.order_date >= customer_versions.valid_from or customer_versions.version = 1)

)

select * from final
