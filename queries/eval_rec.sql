-- REC (RefCOCO/+/g): one box per referring expression. Acc@0.5 = share of samples whose
-- predicted box has IoU > 0.5 with the ground truth (Shikra/VistaLLM's rule; a missing or
-- unparsable box counts as a miss).
--
-- A job file (docs/eval.md): `predictions` reads `samples` and returns one row per sample;
-- `scores` reads `predictions` and `samples`. The model runs once per row (the `generated` CTE).
-- Boxes are asked for in the model's coordinate style (SET vista.coord_style: VistaLLM's bin
-- tokens by default, or decimals) and parsed back to pixel space (the parser reads both).

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: one box is 4 bins, 3 separators and 2 markers (9 tokens with bin tokens, about
-- 30 as decimals in a LLaMA vocabulary), plus a lead-in. A row that reaches it has parse_status
-- 'truncated'.
SET vista.max_new_tokens = 64;

CREATE OR REPLACE VIEW predictions AS
WITH prompted AS (
    SELECT sample_id, task, COALESCE(CAST(image AS BYTEA), read_bytes(image_path)) AS img, width, height,
           vista_prompt('rec', instruction, 'model', sample_id) AS instruction
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
SELECT 'rec' AS task, 'acc@0.5' AS metric,
       AVG(CASE WHEN box_iou(p.boxes[1], s.boxes[1]) > 0.5 THEN 1.0 ELSE 0.0 END) AS value,
       COUNT(*) AS n, 'iou>0.5' AS variant
FROM predictions p JOIN samples s USING (sample_id)
UNION ALL
SELECT 'rec', 'parsed', AVG(CASE WHEN parse_status = 'ok' THEN 1.0 ELSE 0.0 END), COUNT(*), 'parse_status = ok'
FROM predictions
UNION ALL
SELECT 'rec', 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'rec', 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions;

SELECT * FROM scores ORDER BY metric;
