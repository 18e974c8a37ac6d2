-- RES (RefCOCO/+/g): one mask per expression, asked for as a contour of points in the model's
-- coordinate style (SET vista.coord_style: VistaLLM's bin tokens by default), rasterised at the original image size (pycocotools' polygon rule). Scores: mIoU,
-- cIoU (cumulative I / cumulative U) and Pr@0.5..0.9 (res_score); a missing mask is a miss.
--
-- A job file (docs/eval.md): `predictions` reads `samples` and returns one row per sample;
-- `scores` reads `predictions` and `samples`. The model runs once per row (the `generated` CTE).

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: a 32-point contour is 64 bins, 63 separators and 2 markers (about 130 tokens):
-- twice that. A row that reaches it has parse_status 'truncated'.
SET vista.max_new_tokens = 256;

CREATE OR REPLACE VIEW predictions AS
WITH prompted AS (
    SELECT sample_id, task, COALESCE(CAST(image AS BYTEA), read_bytes(image_path)) AS img, width, height,
           vista_prompt('res', instruction, 'model', sample_id) AS instruction
    FROM samples
),
generated AS (
    SELECT sample_id, task, instruction,
           COALESCE(width, image_width(img)) AS width,
           COALESCE(height, image_height(img)) AS height,
           vista_generate(img, instruction, output => 'detail') AS g
    FROM prompted
),
parsed AS (
    SELECT sample_id, task, instruction, width, height, g,
           parse_polygons(g['text'], 'pixel', width, height) AS p
    FROM generated
)
SELECT sample_id, task, instruction,
       g['text'] AS raw,
       polygon_to_mask(p['polygons'], width, height, space => 'pixel') AS masks,
       CASE WHEN g['truncated'] THEN 'truncated' ELSE p['status'] END AS parse_status,
       g['error'] AS error,
       g['latency_ms'] AS latency_ms
FROM parsed;

CREATE OR REPLACE VIEW scores AS
WITH s AS (
    SELECT res_score(p.masks[1], s.masks[1]) AS r
    FROM predictions p JOIN samples s USING (sample_id)
)
SELECT 'res' AS task, 'miou' AS metric, r['miou'] AS value, r['n'] AS n, 'res' AS variant FROM s
UNION ALL SELECT 'res', 'ciou', r['ciou'], r['n'], 'res' FROM s
UNION ALL SELECT 'res', 'pr_50', r['pr_50'], r['n'], 'res' FROM s
UNION ALL
SELECT 'res', 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'res', 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions;

SELECT * FROM scores ORDER BY metric;
