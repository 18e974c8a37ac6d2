-- GRES (gRefCOCO): zero or more masks per expression (an empty answer = "no target"), asked
-- for as contours in the model's coordinate style (vista.coord_style) and rasterised at the
-- original image size. Scores as ReLA's evaluator (gres_score): gIoU, cIoU, N-acc, T-acc.
--
-- A job file (docs/eval.md): `predictions` reads `samples` and returns one row per sample;
-- `scores` reads `predictions` and `samples`. The model runs once per row (the `generated` CTE).

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: each 32-point contour takes about 130 tokens: room for 7 objects (raise it for
-- expressions with more). A row that reaches it has parse_status 'truncated'.
SET vista.max_new_tokens = 1024;

CREATE OR REPLACE VIEW predictions AS
WITH prompted AS (
    SELECT sample_id, task, COALESCE(CAST(image AS BYTEA), read_bytes(image_path)) AS img, width, height,
           vista_prompt('gres', instruction, 'model', sample_id) AS instruction
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
    SELECT gres_score(p.masks, s.masks) AS r, COUNT(*) AS n
    FROM predictions p JOIN samples s USING (sample_id)
)
SELECT 'gres' AS task, 'giou' AS metric, r['giou'] AS value, n, 'rela/884ef17' AS variant FROM s
UNION ALL SELECT 'gres', 'ciou', r['ciou'], n, 'rela/884ef17' FROM s
UNION ALL SELECT 'gres', 'n_acc', r['n_acc'], n, 'rela/884ef17' FROM s
UNION ALL SELECT 'gres', 't_acc', r['t_acc'], n, 'rela/884ef17' FROM s
UNION ALL
SELECT 'gres', 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'gres', 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions;

SELECT * FROM scores ORDER BY metric;
