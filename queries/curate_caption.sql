-- Captioning: one sample per reference caption (its target), with every caption of the image
-- as `answers` (the references CIDEr scores against). Captions of fewer than 3 words are
-- dropped (`short_caption`); at most $max_per_class captions per image are kept.
-- Inputs: captions (from `vista import coco-instances --captions`), image.
-- Run by `vista curate caption` after curate_common.sql.

CREATE TABLE image_captions AS
SELECT image_id, array_agg(caption ORDER BY caption_id) AS refs
FROM captions
GROUP BY image_id;

CREATE VIEW sample AS
SELECT 'coco-caption-' || c.caption_id AS sample_id,
       'caption' AS task,
       c.image_id, i.image_path, i.width, i.height,
       vista_prompt('caption', NULL, style => $style,
                    seed => CAST($seed AS VARCHAR) || ':' || c.caption_id) AS instruction,
       c.caption AS target,
       r.refs AS answers,
       $split AS split,
       $source AS source,
       c.image_id AS class,
       CASE WHEN regexp_count(c.caption, '\S+') < 3 THEN 'short_caption'
            WHEN i.duplicate_of IS NOT NULL THEN 'duplicate_image' END AS pre_drop,
       CAST(NULL AS DOUBLE) AS recon_iou
FROM captions c
JOIN image i ON i.image_id = c.image_id
JOIN image_captions r ON r.image_id = c.image_id;
