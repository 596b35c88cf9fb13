{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        window_column='order_date',
        on_schema_change='fail',
    )
}}

with

source as (

    select * from {{ source('tpch', 'orders') }}
    where {{ in_partition_window('_partition_date') }}

),

deduplicated as (

    select * from source
    qualify row_number() over (
        partition by o_orderkey order by _loaded_at desc, _source_file desc
    ) = 1

),

renamed as (

    select
        cast(o_orderkey as bigint) as order_key,
        cast(o_custkey as bigint) as customer_key,
        cast(o_orderstatus as varchar) as order_status,
        cast(o_totalprice as decimal(15, 2)) as total_price,
        cast(_partition_date as date) as order_date,
        cast(o_orderpriority as varchar) as order_priority,
        cast(o_clerk as varchar) as clerk,
        cast(o_shippriority as integer) as ship_priority,
        cast(o_comment as varchar) as comment
    from deduplicated

)

select * from renamed
