with

source as (

    select * from {{ source('tpch', 'region') }}

),

deduplicated as (

    select * from source
    qualify row_number() over (partition by r_regionkey order by _loaded_at desc) = 1

),

renamed as (

    select
        cast(r_regionkey as bigint) as region_key,
        cast(r_name as varchar) as name,
        cast(r_comment as varchar) as comment
    from deduplicated

)

select * from renamed
