select pack_id, pack_name, category_id, {{ money('unit_price') }} as unit_price from {{ ref('packs_db') }}
