-- Co-segmentation (iCoSeg-style groups; `vista import coseg`): each sample is a few images of
-- one group (`image_id` = the group) with one ground-truth mask per image. The model outlines
-- the common object in every image, one contour per image in order; each contour is rasterised
-- at its own image's size. Scores as the co-segmentation literature defines them (metrics.md §7;
-- no canonical script exists, so the rules are stated here):
--   Precision P = pixels labelled correctly (foreground and background) / all pixels;
--   Jaccard   J = |pred AND gt| / |pred OR gt| on the foreground, 1 when both are empty;
-- per image, averaged over the images of each group, then over groups. A missing or
-- unparsable contour is an empty mask.
--
-- A job file (docs/eval.md): `predictions` reads `samples` and returns one row per sample;
-- `scores` reads `predictions` and `samples`. The model runs once per row (the `generated` CTE).

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: each image's 32-point contour takes about 130 tokens: room for 7 images. A
-- row that reaches it has parse_status 'truncated'.
SET vista.max_new_tokens = 1024;

CREATE OR REPLACE VIEW predictions AS
WITH prompted AS (
    SELECT sample_id, task, images,
           vista_prompt('coseg', NULLIF(instruction, ''), 'model', sample_id, NULL, 32,
                        CAST(cardinality(images) AS BIGINT)) AS instruction
    FROM samples
),
generated AS (
    SELECT sample_id, task, instruction, images,
           vista_generate(images, instruction, output => 'detail') AS g
    FROM prompted
),
parsed AS (
    SELECT sample_id, task, instruction, images, g,
           parse_polygons(g['text']) AS p
    FROM generated
),
per_image AS (
    SELECT sample_id, k, images[k] AS img, p['polygons'][k] AS poly
    FROM (SELECT sample_id, images, p, unnest(range(1, CAST(cardinality(images) AS BIGINT) + 1)) AS k FROM parsed)
),
rasterised AS (
    SELECT sample_id,
           array_agg(polygon_to_mask(poly, image_width(img), image_height(img), space => 'square')
                     ORDER BY k) AS masks
    FROM per_image
    GROUP BY sample_id
)
SELECT sample_id, task, instruction,
       g['text'] AS raw,
       r.masks AS masks,
       CASE WHEN g['truncated'] THEN 'truncated' ELSE p['status'] END AS parse_status,
       g['error'] AS error,
       g['latency_ms'] AS latency_ms
FROM parsed JOIN rasterised r USING (sample_id);

CREATE OR REPLACE VIEW scores AS
WITH pairs AS (
    SELECT s.image_id AS grp, k, p.masks[k] AS pm, s.masks[k] AS gm
    FROM (SELECT sample_id, image_id, masks, unnest(range(1, CAST(cardinality(masks) AS BIGINT) + 1)) AS k
          FROM samples) s
    JOIN predictions p USING (sample_id)
),
areas AS (
    SELECT grp,
           CAST(mask_area(gm) AS DOUBLE) AS g,
           CAST(COALESCE(mask_area(pm), 0) AS DOUBLE) AS a,
           COALESCE(mask_iou(pm, gm), 0.0) AS iou,
           CAST(gm['size'][1] AS DOUBLE) * CAST(gm['size'][2] AS DOUBLE) AS total
    FROM pairs
),
per_image AS (
    -- I = IoU (a + g) / (1 + IoU); pixels labelled wrongly = a + g - 2 I.
    SELECT grp,
           1.0 - (a + g - 2.0 * (iou * (a + g) / (1.0 + iou))) / total AS p,
           CASE WHEN a + g = 0 THEN 1.0 ELSE iou END AS j
    FROM areas
),
per_group AS (
    SELECT grp, AVG(p) AS p, AVG(j) AS j, COUNT(*) AS n FROM per_image GROUP BY grp
)
SELECT 'coseg' AS task, 'precision' AS metric, AVG(p) AS value, SUM(n) AS n, 'per image, group mean, then mean over groups' AS variant FROM per_group
UNION ALL SELECT 'coseg', 'jaccard', AVG(j), SUM(n), 'per image, group mean, then mean over groups' FROM per_group
UNION ALL
SELECT 'coseg', 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'coseg', 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions;

SELECT * FROM scores ORDER BY metric;
