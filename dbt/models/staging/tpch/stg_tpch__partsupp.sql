with

source as (

    select * from {{ source('tpch', 'partsupp') }}

),

deduplicated as (

    select * from source
    qualify row_number() over (partition by ps_partkey, ps_suppkey order by _loaded_at desc) = 1

),

renamed as (

    select
        cast(ps_partkey as bigint) as part_key,
        cast(ps_suppkey as bigint) as supplier_key,
        cast(ps_availqty as integer) as available_quantity,
        cast(ps_supplycost as decimal(15, 2)) as supply_cost,
        cast(ps_comment as varchar) as comment
    from deduplicated

)

select * from renamed
