-- VQAv2: VQA accuracy (min(#humans that said the answer / 3, 1), averaged over the 10 choose 9
-- subsets, official answer normalisation) of "The answer is X." or bare answers.
--
-- A job file (docs/eval.md): `predictions` reads `samples` and returns one row per sample;
-- `scores` reads `predictions` and `samples`. The model runs once per row (the `generated` CTE).

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: VQAv2 answers are one to three words; "The answer is X." is under 20 tokens. A
-- row that reaches it has parse_status 'truncated'.
SET vista.max_new_tokens = 32;

CREATE OR REPLACE VIEW predictions AS
WITH prompted AS (
    SELECT sample_id, task, image, image_path,
           vista_prompt('vqa', instruction, 'model', sample_id) AS instruction
    FROM samples
),
generated AS (
    SELECT sample_id, task, instruction,
           vista_generate(COALESCE(CAST(image AS BYTEA), read_bytes(image_path)), instruction,
                          output => 'detail') AS g
    FROM prompted
),
parsed AS (
    SELECT sample_id, task, instruction, g, parse_answer(g['text']) AS a
    FROM generated
)
SELECT sample_id, task, instruction,
       g['text'] AS raw,
       a['answer'] AS answer,
       CASE WHEN g['truncated'] THEN 'truncated' ELSE a['status'] END AS parse_status,
       g['error'] AS error,
       g['latency_ms'] AS latency_ms
FROM parsed;

CREATE OR REPLACE VIEW scores AS
SELECT 'vqa' AS task, 'vqa_accuracy' AS metric,
       AVG(COALESCE(vqa_accuracy(p.answer, s.answers), 0.0)) AS value,
       COUNT(*) AS n, 'vqa-current' AS variant
FROM predictions p JOIN samples s USING (sample_id)
UNION ALL
SELECT 'vqa', 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'vqa', 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions;

SELECT * FROM scores ORDER BY metric;
