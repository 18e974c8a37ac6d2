-- GREC: "every <category>" -> the boxes of all its objects in the image, for every category an
-- image has, plus $negatives_per_image categories it does not have (no target: the empty
-- answer). Groups with a crowd region or a tiny object are dropped (their boxes are not a
-- clean answer). Balanced by the number of targets (none / one / many).
-- Run by `vista curate grec` after curate_common.sql.

CREATE TABLE target_group AS
SELECT image_id, category_id, category,
       array_agg(box ORDER BY instance_id) AS boxes,
       bool_or(object_flag = 'crowd') AS has_crowd,
       bool_or(object_flag = 'tiny') AS has_tiny
FROM object
GROUP BY image_id, category_id, category;

CREATE TABLE expression AS
SELECT image_id, category_id, category, boxes, has_crowd, has_tiny FROM target_group
UNION ALL
SELECT image_id, category_id, category, [] AS boxes, false AS has_crowd, false AS has_tiny
FROM absent_category;

CREATE VIEW sample AS
SELECT 'coco-grec-' || e.image_id || '-' || CAST(e.category_id AS VARCHAR) AS sample_id,
       'grec' AS task,
       e.image_id, i.image_path, i.width, i.height,
       vista_prompt('grec', 'every ' || e.category, style => $style,
                    seed => CAST($seed AS VARCHAR) || ':' || e.image_id || ':' || CAST(e.category_id AS VARCHAR))
         AS instruction,
       format_boxes(e.boxes, style => $style, space => 'pixel', width => i.width,
                    height => i.height) AS target,
       e.boxes,
       $split AS split,
       $source AS source,
       CASE array_length(e.boxes) WHEN 0 THEN 'none' WHEN 1 THEN 'one' ELSE 'many' END AS class,
       CASE WHEN e.has_crowd THEN 'crowd'
            WHEN e.has_tiny THEN 'tiny'
            WHEN i.duplicate_of IS NOT NULL THEN 'duplicate_image' END AS pre_drop,
       CAST(NULL AS DOUBLE) AS recon_iou
FROM expression e
JOIN image i ON i.image_id = e.image_id;
