-- GRES: "every <category>" -> the masks of all its objects in the image as $points contour
-- points each, for every category an image has, plus $negatives_per_image absent categories
-- (no target: the empty answer). A group is as good as its worst target: `recon_iou` is the
-- minimum over its objects and groups below $min_iou are dropped (`low_iou`); groups with a
-- crowd region or a tiny object are dropped too. Balanced by the number of targets.
-- Run by `vista curate gres` after curate_common.sql.

CREATE TABLE target_group AS
SELECT o.image_id, o.category_id, o.category,
       array_agg(o.box ORDER BY o.instance_id) AS boxes,
       array_agg(o.mask ORDER BY o.instance_id) AS masks,
       array_agg(o.seq ORDER BY o.instance_id) AS seqs,
       MIN(o.recon_iou) AS recon_iou,
       bool_or(o.seq IS NULL) AS has_empty,
       bool_or(o.object_flag = 'crowd') AS has_crowd,
       bool_or(o.object_flag = 'tiny') AS has_tiny
FROM object_sequence o
GROUP BY o.image_id, o.category_id, o.category;

CREATE TABLE expression AS
SELECT image_id, category_id, category, boxes, masks, seqs, recon_iou, has_empty, has_crowd,
       has_tiny
FROM target_group
UNION ALL
SELECT image_id, category_id, category, [] AS boxes, [] AS masks, [] AS seqs,
       CAST(NULL AS DOUBLE) AS recon_iou, false AS has_empty, false AS has_crowd,
       false AS has_tiny
FROM absent_category;

CREATE VIEW sample AS
SELECT 'coco-gres-' || e.image_id || '-' || CAST(e.category_id AS VARCHAR) AS sample_id,
       'gres' AS task,
       e.image_id, i.image_path, i.width, i.height,
       vista_prompt('gres', 'every ' || e.category, style => $style,
                    seed => CAST($seed AS VARCHAR) || ':' || e.image_id || ':' || CAST(e.category_id AS VARCHAR),
                    region => NULL, n_points => $points) AS instruction,
       format_points(e.seqs, style => $style) AS target,
       e.boxes,
       e.masks,
       $split AS split,
       $source AS source,
       CASE array_length(e.masks) WHEN 0 THEN 'none' WHEN 1 THEN 'one' ELSE 'many' END AS class,
       CASE WHEN e.has_crowd THEN 'crowd'
            WHEN e.has_tiny THEN 'tiny'
            WHEN e.has_empty THEN 'empty_mask'
            WHEN e.recon_iou < $min_iou THEN 'low_iou'
            WHEN i.duplicate_of IS NOT NULL THEN 'duplicate_image' END AS pre_drop,
       e.recon_iou
FROM expression e
JOIN image i ON i.image_id = e.image_id;
