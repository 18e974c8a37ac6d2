-- VQA from instance annotations: "How many <category> objects are there?" (the count) for
-- every category an image has, and "Is there a <category> in the image?" (yes) for present and
-- (no) for $negatives_per_image absent categories. Answers are 10 identical strings, the
-- VQAv2 layout, so that a correct answer scores 1 under the VQA accuracy. Questions about a
-- category with a crowd region (uncountable) or a tiny object (unreliable) are dropped.
-- Balanced by question kind and answer (`count:2`, `exists:no`), which keeps the yes/no prior
-- at what the caps allow. Run by `vista curate vqa` after curate_common.sql.

CREATE TABLE present AS
SELECT image_id, category_id, category, COUNT(*) AS n,
       bool_or(object_flag = 'crowd') AS has_crowd,
       bool_or(object_flag = 'tiny') AS has_tiny
FROM object
GROUP BY image_id, category_id, category;

CREATE TABLE question AS
SELECT image_id, category_id, 'count' AS kind,
       'How many ' || category || ' objects are there?' AS question,
       CAST(n AS VARCHAR) AS answer, has_crowd, has_tiny
FROM present
UNION ALL
SELECT image_id, category_id, 'exists' AS kind,
       'Is there a ' || category || ' in the image?' AS question,
       'yes' AS answer, has_crowd, has_tiny
FROM present
UNION ALL
SELECT image_id, category_id, 'exists' AS kind,
       'Is there a ' || category || ' in the image?' AS question,
       'no' AS answer, false AS has_crowd, false AS has_tiny
FROM absent_category;

CREATE VIEW sample AS
SELECT 'coco-vqa-' || q.kind || '-' || q.image_id || '-' || CAST(q.category_id AS VARCHAR)
         AS sample_id,
       'vqa' AS task,
       q.image_id, i.image_path, i.width, i.height,
       vista_prompt('vqa', q.question, style => $style,
                    seed => CAST($seed AS VARCHAR) || ':' || q.kind || ':' || q.image_id || ':'
                            || CAST(q.category_id AS VARCHAR)) AS instruction,
       q.answer AS target,
       array_repeat(q.answer, 10) AS answers,
       $split AS split,
       $source AS source,
       q.kind || ':' || q.answer AS class,
       CASE WHEN q.has_crowd THEN 'crowd'
            WHEN q.has_tiny THEN 'tiny'
            WHEN i.duplicate_of IS NOT NULL THEN 'duplicate_image' END AS pre_drop,
       CAST(NULL AS DOUBLE) AS recon_iou
FROM question q
JOIN image i ON i.image_id = q.image_id;
