-- GREC (gRefCOCO): zero or more boxes per expression; an empty answer means "no target".
-- Scores as gRefCOCO's evaluator (grec_score): Pr@(F1=1, GIoU>=0.5), N-acc and T-acc.
--
-- A job file (docs/eval.md): `predictions` reads `samples` and returns one row per sample;
-- `scores` reads `predictions` and `samples`. The model runs once per row (the `generated` CTE).

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: each box takes 9 bin tokens and one separator: room for 50 boxes. A row that
-- reaches it has parse_status 'truncated'.
SET vista.max_new_tokens = 512;

CREATE OR REPLACE VIEW predictions AS
WITH prompted AS (
    SELECT sample_id, task, COALESCE(CAST(image AS BYTEA), read_bytes(image_path)) AS img, width, height,
           vista_prompt('grec', instruction, 'model', sample_id) AS instruction
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
           parse_boxes(g['text'], 'pixel', width, height) AS p
    FROM generated
)
SELECT sample_id, task, instruction,
       g['text'] AS raw,
       p['boxes'] AS boxes,
       CASE WHEN g['truncated'] THEN 'truncated' ELSE p['status'] END AS parse_status,
       g['error'] AS error,
       g['latency_ms'] AS latency_ms
FROM parsed;

CREATE OR REPLACE VIEW scores AS
WITH s AS (
    SELECT grec_score(p.boxes, s.boxes) AS r, COUNT(*) AS n
    FROM predictions p JOIN samples s USING (sample_id)
)
SELECT 'grec' AS task, 'precision_f1_1' AS metric, r['precision_f1_1'] AS value, n, 'grec/giou>=0.5' AS variant FROM s
UNION ALL SELECT 'grec', 'n_acc', r['n_acc'], n, 'grec/giou>=0.5' FROM s
UNION ALL SELECT 'grec', 't_acc', r['t_acc'], n, 'grec/giou>=0.5' FROM s
UNION ALL
SELECT 'grec', 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'grec', 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions;

SELECT * FROM scores ORDER BY metric;
