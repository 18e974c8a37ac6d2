-- NLVR2 (two images per sample, `images` list<binary>): accuracy of the true/false answer.
-- `samples.target` holds the reference ('true' / 'false').
--
-- A job file (docs/eval.md): `predictions` reads `samples` and returns one row per sample;
-- `scores` reads `predictions` and `samples`. The model runs once per row (the `generated` CTE).

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: the answer is true or false, with or without "The answer is". A row that
-- reaches it has parse_status 'truncated'.
SET vista.max_new_tokens = 32;

CREATE OR REPLACE VIEW predictions AS
WITH prompted AS (
    SELECT sample_id, task, images,
           vista_prompt('nlvr', instruction, 'model', sample_id) AS instruction
    FROM samples
),
generated AS (
    SELECT sample_id, task, instruction,
           vista_generate(images, instruction, output => 'detail') AS g
    FROM prompted
),
parsed AS (
    SELECT sample_id, task, instruction, g, parse_answer(g['text']) AS a
    FROM generated
)
SELECT sample_id, task, instruction,
       g['text'] AS raw,
       CASE WHEN lower(a['answer']) IN ('true', 'yes') THEN 'true'
            WHEN lower(a['answer']) IN ('false', 'no') THEN 'false' END AS answer,
       CASE WHEN g['truncated'] THEN 'truncated'
            WHEN a['status'] <> 'ok' THEN a['status']
            WHEN lower(a['answer']) IN ('true', 'yes', 'false', 'no') THEN 'ok'
            ELSE 'error: not true/false' END AS parse_status,
       g['error'] AS error,
       g['latency_ms'] AS latency_ms
FROM parsed;

CREATE OR REPLACE VIEW scores AS
SELECT 'nlvr' AS task, 'accuracy' AS metric,
       AVG(CASE WHEN p.answer = lower(s.target) THEN 1.0 ELSE 0.0 END) AS value,
       COUNT(*) AS n, 'exact true/false' AS variant
FROM predictions p JOIN samples s USING (sample_id)
UNION ALL
SELECT 'nlvr', 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'nlvr', 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions;

SELECT * FROM scores ORDER BY metric;
