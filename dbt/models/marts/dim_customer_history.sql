-- Every version of each customer (SCD Type 2), valid over [valid_from, valid_to): a change of
-- market segment or account balance between two daily snapshots opens a new version. Join facts
-- to it as of their date (fct_order_lines.customer_market_segment_at_order).

with

history as (

    select * from {{ source('tpch_history', 'customer_history') }}

),

final as (

    select
        cast(c_custkey as bigint) as customer_key,
        cast(version as bigint) as version,
        cast(c_name as varchar) as name,
        cast(c_nationkey as bigint) as nation_key,
        cast(c_mktsegment as varchar) as market_segment,
        cast(c_acctbal as decimal(15, 2)) as account_balance,
        cast(valid_from as date) as valid_from,
        cast(valid_to as date) as valid_to,
        cast(is_current as boolean) as is_current
    from history

)

select * from final
