-- REC: "the <category>" -> its box, for every object whose category occurs once in its image
-- (a category seen twice would make the expression ambiguous: that is GREC's job).
-- Run by `vista curate rec` after curate_common.sql; defines the view `sample` (candidates in
-- the samples layout with `class`, `pre_drop` and `recon_iou`, NULL: boxes are not redrawn),
-- which curate_balance.sql balances.

CREATE VIEW sample AS
SELECT 'coco-rec-' || instance_id AS sample_id,
       'rec' AS task,
       image_id, image_path, width, height,
       vista_prompt('rec', 'the ' || category, style => $style,
                    seed => CAST($seed AS VARCHAR) || ':' || instance_id) AS instruction,
       format_boxes(box, style => $style, space => 'pixel', width => width, height => height)
         AS target,
       [box] AS boxes,
       $split AS split,
       $source AS source,
       category AS class,
       CASE WHEN object_flag IS NOT NULL THEN object_flag
            WHEN duplicate_of IS NOT NULL THEN 'duplicate_image' END AS pre_drop,
       CAST(NULL AS DOUBLE) AS recon_iou
FROM (
  SELECT o.*, COUNT(*) OVER (PARTITION BY image_id, category_id) AS same_category
  FROM object o
) o
WHERE same_category = 1;
