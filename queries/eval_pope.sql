-- POPE (object hallucination, yes/no questions; `vista import pope`): accuracy, precision,
-- recall, F1 and yes-ratio as the POPE paper reports them (RUCAIBox/POPE evaluate.py @ 3df3ba1):
-- the generated text up to its first '.', commas removed, split on single spaces; any word
-- exactly 'No', 'not' or 'no' makes the answer no, anything else (an empty answer too) yes.
-- "yes" is the positive class; `samples.target` holds the label. Report each split (random,
-- popular, adversarial) from its own samples table.
--
-- A job file (docs/eval.md): `predictions` reads `samples` and returns one row per sample;
-- `scores` reads `predictions` and `samples`. The model runs once per row (the `generated` CTE).

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: a yes/no answer with a short justification. A row that reaches it has
-- parse_status 'truncated'.
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
worded AS (
    SELECT sample_id, task, instruction, g,
           string_to_array(replace(split_part(COALESCE(g['text'], ''), '.', 1), ',', ''), ' ')
               AS words
    FROM generated
)
SELECT sample_id, task, instruction,
       g['text'] AS raw,
       CASE WHEN array_has_any(words, ['No', 'not', 'no']) THEN 'no' ELSE 'yes' END AS answer,
       CASE WHEN g['truncated'] THEN 'truncated' ELSE 'ok' END AS parse_status,
       g['error'] AS error,
       g['latency_ms'] AS latency_ms
FROM worded;

CREATE OR REPLACE VIEW scores AS
WITH c AS (
    SELECT CAST(SUM(CASE WHEN p.answer = 'yes' AND s.target <> 'no' THEN 1 ELSE 0 END) AS DOUBLE) AS tp,
           CAST(SUM(CASE WHEN p.answer = 'yes' AND s.target = 'no' THEN 1 ELSE 0 END) AS DOUBLE) AS fp,
           CAST(SUM(CASE WHEN p.answer = 'no' AND s.target = 'no' THEN 1 ELSE 0 END) AS DOUBLE) AS tn,
           CAST(SUM(CASE WHEN p.answer = 'no' AND s.target <> 'no' THEN 1 ELSE 0 END) AS DOUBLE) AS fn,
           COUNT(*) AS n
    FROM predictions p JOIN samples s USING (sample_id)
),
r AS (
    SELECT tp, fp, tn, fn, n,
           tp / NULLIF(tp + fp, 0) AS precision,
           tp / NULLIF(tp + fn, 0) AS recall
    FROM c
)
SELECT 'pope' AS task, 'accuracy' AS metric, (tp + tn) / n AS value, n, 'pope/3df3ba1' AS variant FROM r
UNION ALL SELECT 'pope', 'precision', precision, n, 'pope/3df3ba1' FROM r
UNION ALL SELECT 'pope', 'recall', recall, n, 'pope/3df3ba1' FROM r
UNION ALL SELECT 'pope', 'f1', 2 * precision * recall / NULLIF(precision + recall, 0), n, 'pope/3df3ba1' FROM r
UNION ALL SELECT 'pope', 'yes_ratio', (tp + fp) / n, n, 'pope/3df3ba1' FROM r
UNION ALL
SELECT 'pope', 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'pope', 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions;

SELECT * FROM scores ORDER BY metric;
