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

    select * from {{ source('tpch', 'lineitem') }}
    where {{ in_partition_window('_partition_date') }}

),

deduplicated as (

    select * from source
    qualify row_number() over (
        partition by l_orderkey, l_linenumber order by _loaded_at desc, _source_file desc
    ) = 1

),

renamed as (

    select
        cast(l_orderkey as bigint) as order_key,
        cast(l_linenumber as integer) as line_number,
        -- A line item belongs to its order's date: the partition it was dropped in.
        cast(_partition_date as date) as order_date,
        cast(l_partkey as bigint) as part_key,
        cast(l_suppkey as bigint) as supplier_key,
        cast(l_quantity as decimal(15, 2)) as quantity,
        cast(l_extendedprice as decimal(15, 2)) as extended_price,
        cast(l_discount as decimal(15, 2)) as discount,
        cast(l_tax as decimal(15, 2)) as tax,
        cast(l_returnflag as varchar) as return_flag,
        cast(l_linestatus as varchar) as line_status,
        cast(l_shipdate as date) as ship_date,
        cast(l_commitdate as date) as commit_date,
        cast(l_receiptdate as date) as receipt_date,
        cast(l_shipinstruct as varchar) as ship_instructions,
        cast(l_shipmode as varchar) as ship_mode,
        cast(l_comment as varchar) as comment
    from deduplicated

)

select * from renamed
