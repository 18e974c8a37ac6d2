-- Captioning (COCO): CIDEr-D and BLEU-1..4 against each image's reference captions.
--
-- A job file (docs/eval.md): `predictions` reads table `samples` (schemas/samples.json) and
-- returns one row per sample; `scores` reads `predictions` and `samples`. Run it resumably with
--   vista run queries/eval_caption.sql --samples captions.parquet --out out/ [--resume]
-- or plainly with `vista sql -f` after registering `samples`. Set the model first
-- (SET vista.model = '...' here or --set model=...). The model runs once per row: the
-- `generated` CTE calls it and everything else reads its result.

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: a caption is one sentence: COCO references are under 60 tokens, with room for a
-- lead-in. A row that reaches it has parse_status 'truncated'.
SET vista.max_new_tokens = 96;

CREATE OR REPLACE VIEW predictions AS
WITH prompted AS (
    SELECT sample_id, task, image, image_path,
           vista_prompt('caption', NULL, 'model', sample_id) AS instruction
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
WITH scored AS (
    SELECT cider_d(COALESCE(p.answer, ''), s.answers) AS cider,
           bleu(COALESCE(p.answer, ''), s.answers) AS b,
           COUNT(*) AS n
    FROM predictions p JOIN samples s USING (sample_id)
)
SELECT 'caption' AS task, 'cider_d' AS metric, cider['score'] AS value, n, 'cider_d/ptb' AS variant FROM scored
UNION ALL SELECT 'caption', 'bleu_1', b['bleu_1'], n, 'bleu/ptb' FROM scored
UNION ALL SELECT 'caption', 'bleu_4', b['bleu_4'], n, 'bleu/ptb' FROM scored
UNION ALL
SELECT 'caption', 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'caption', 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions;

SELECT * FROM scores ORDER BY metric;
