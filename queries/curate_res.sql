-- RES: "the <category>" -> its mask as $points contour points, for every object whose
-- category occurs once in its image. Targets whose polygon redraws the mask with an IoU below
-- $min_iou are dropped (`low_iou`): a model cannot learn a better mask than its target.
-- Run by `vista curate res` after curate_common.sql.

CREATE VIEW sample AS
SELECT 'coco-res-' || o.instance_id AS sample_id,
       'res' AS task,
       o.image_id, o.image_path, o.width, o.height,
       vista_prompt('res', 'the ' || o.category, style => $style,
                    seed => CAST($seed AS VARCHAR) || ':' || o.instance_id, region => NULL,
                    n_points => $points) AS instruction,
       o.target,
       [o.box] AS boxes,
       [o.mask] AS masks,
       $split AS split,
       $source AS source,
       o.category AS class,
       CASE WHEN o.object_flag IS NOT NULL THEN o.object_flag
            WHEN o.seq IS NULL THEN 'empty_mask'
            WHEN o.recon_iou < $min_iou THEN 'low_iou'
            WHEN o.duplicate_of IS NOT NULL THEN 'duplicate_image' END AS pre_drop,
       o.recon_iou
FROM (
  -- Categories that occur once in their image. An aggregate joined back (its small result is
  -- the build side), not a window: a window over the objects would hold every row, masks
  -- included, until its partition ends, and cannot spill.
  SELECT image_id, category_id FROM object GROUP BY image_id, category_id HAVING COUNT(*) = 1
) u
JOIN object_sequence o ON o.image_id = u.image_id AND o.category_id = u.category_id;
