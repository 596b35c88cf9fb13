with

source as (

    select * from {{ source('tpch', 'part') }}

),

deduplicated as (

    select * from source
    qualify row_number() over (partition by p_partkey order by _loaded_at desc) = 1

),

renamed as (

    select
        cast(p_partkey as bigint) as part_key,
        cast(p_name as varchar) as name,
        cast(p_mfgr as varchar) as manufacturer,
        cast(p_brand as varchar) as brand,
        cast(p_type as varchar) as type,
        cast(p_size as integer) as size,
        cast(p_container as varchar) as container,
        cast(p_retailprice as decimal(15, 2)) as retail_price,
        cast(p_comment as varchar) as comment
    from deduplicated

)

select * from renamed
