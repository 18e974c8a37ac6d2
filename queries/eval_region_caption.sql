-- Region captioning (RefCOCOg refs, Visual Genome regions; `vista import refs-regions` /
-- `vista import vg-regions`): describe the region in `points` (a pixel box), scored against the
-- sample's reference descriptions with coco-caption's CIDEr-D, BLEU and ROUGE-L (PTB-tokenised;
-- pycocoevalcap's pipeline). METEOR, which region captioning papers also report, needs
-- coco-caption's Java METEOR 1.5 and is not computed here.
--
-- A job file (docs/eval.md): `predictions` reads `samples` and returns one row per sample;
-- `scores` reads `predictions` and `samples`. The model runs once per row (the `generated` CTE).
-- The region is written in the model's coordinate style (SET vista.coord_style).

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: a region description is a phrase or one sentence. A row that reaches it has
-- parse_status 'truncated'.
SET vista.max_new_tokens = 64;

CREATE OR REPLACE VIEW predictions AS
WITH sized AS (
    SELECT sample_id, task, points, width, height,
           COALESCE(CAST(image AS BYTEA), read_bytes(image_path)) AS img
    FROM samples
),
prompted AS (
    SELECT sample_id, task, img,
           vista_prompt('region_caption', NULL, 'model', sample_id,
                        format_boxes([points], 'model', 'pixel',
                                     COALESCE(width, image_width(img)),
                                     COALESCE(height, image_height(img)))) AS instruction
    FROM sized
),
generated AS (
    SELECT sample_id, task, instruction,
           vista_generate(img, instruction, output => 'detail') AS g
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
           rouge_l(COALESCE(p.answer, ''), s.answers) AS r,
           COUNT(*) AS n
    FROM predictions p JOIN samples s USING (sample_id)
)
SELECT 'region_caption' AS task, 'cider_d' AS metric, cider['score'] AS value, n, 'cider_d/ptb' AS variant FROM scored
UNION ALL SELECT 'region_caption', 'bleu_1', b['bleu_1'], n, 'bleu/ptb' FROM scored
UNION ALL SELECT 'region_caption', 'bleu_4', b['bleu_4'], n, 'bleu/ptb' FROM scored
UNION ALL SELECT 'region_caption', 'rouge_l', r['score'], n, 'rouge_l/ptb' FROM scored
UNION ALL
SELECT 'region_caption', 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'region_caption', 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions;

SELECT * FROM scores ORDER BY metric;
