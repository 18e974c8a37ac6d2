-- REC: "the <category>" -> its box, for every object whose category occurs once in its image
-- (a category seen twice would make the expression ambiguous: that is GREC's job).
-- Run by `vista curate rec` after curate_common.sql. Returns candidates in the samples layout
-- with `dropped_by` (NULL = kept) and `recon_iou` (NULL: boxes are not redrawn).

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

-- Balance: at most $max_per_class kept samples per category, chosen by a seeded shuffle.
SELECT *,
       CASE WHEN pre_drop IS NOT NULL THEN pre_drop
            WHEN $max_per_class > 0 AND ROW_NUMBER() OVER (
                   PARTITION BY class, pre_drop IS NULL
                   ORDER BY stable_hash(sample_id, $seed), sample_id) > $max_per_class
            THEN 'balance' END AS dropped_by
FROM sample
ORDER BY sample_id;
