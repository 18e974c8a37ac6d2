-- PointQA Local / LookTwice-QA and Visual7W pointing (`vista import pointqa`):
--   task 'pointqa':  a question about the object at `points` (a pixel point [x, y] or box
--                    [x0, y0, x1, y1]); the answer is text;
--   task 'pointing': a question answered by one of the candidate boxes in `boxes`; `answers`
--                    holds the 1-based position of the right candidate.
-- Accuracy as Shikra's PointQA metric (the code VistaLLM evaluates with, metrics.md §9): the
-- answer is the one match of `The answer is (.+?)\.` in the output, whitespace-stripped (none
-- or several matches: a miss), compared exactly with the same extraction from the reference
-- sentence `The answer is {answer} .`; the mean is over every sample. For pointing, the
-- answer is the first box the output writes (read by parse_boxes: the pattern above would cut
-- a decimal box at its first point), written again in the job's coordinate style, so a hit is
-- the right candidate's box exactly as the prompt wrote it.
--
-- A job file (docs/eval.md): `predictions` reads `samples` and returns one row per sample;
-- `scores` reads `predictions` and `samples`. The model runs once per row (the `generated` CTE).
-- Regions and candidates are written in the model's coordinate style (SET vista.coord_style).

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

-- Generation stops at the end token; the limit only bounds a runaway answer and must not cut a
-- well-formed one: "The answer is" and a word or phrase, or one box (9 tokens with bin tokens,
-- about 30 as decimals). A row that reaches it has parse_status 'truncated'.
SET vista.max_new_tokens = 64;

CREATE OR REPLACE VIEW predictions AS
WITH sized AS (
    SELECT sample_id, task, instruction, points, boxes,
           COALESCE(CAST(image AS BYTEA), read_bytes(image_path)) AS img,
           width, height
    FROM samples
),
prompted AS (
    SELECT sample_id, task, img, w, h,
           vista_prompt(task, instruction, 'model', sample_id,
                        CASE WHEN task = 'pointing'
                               THEN format_boxes(boxes, 'model', 'pixel', w, h)
                             WHEN cardinality(points) = 2
                               THEN format_points([points], 'model', 'pixel', w, h, kind => 'point')
                             ELSE format_boxes([points], 'model', 'pixel', w, h) END) AS instruction
    FROM (SELECT *, COALESCE(width, image_width(img)) AS w, COALESCE(height, image_height(img)) AS h
          FROM sized)
),
generated AS (
    SELECT sample_id, task, instruction, w, h,
           vista_generate(img, instruction, output => 'detail') AS g
    FROM prompted
),
extracted AS (
    SELECT sample_id, task, instruction, w, h, g,
           CASE WHEN regexp_count(g['text'], 'The answer is (.+?)\.') = 1
                THEN regexp_replace((regexp_match(g['text'], 'The answer is (.+?)\.'))[1],
                                    '^\s+|\s+$', '', 'g') END AS said
    FROM generated
)
SELECT sample_id, task, instruction,
       g['text'] AS raw,
       CASE WHEN task <> 'pointing' THEN said
            WHEN chosen['boxes'][1] IS NOT NULL
            THEN format_boxes([chosen['boxes'][1]], 'model', 'pixel', w, h) END AS answer,
       CASE WHEN g['truncated'] THEN 'truncated'
            WHEN task = 'pointing' THEN chosen['status']
            WHEN g['text'] IS NULL THEN NULL
            WHEN said IS NULL THEN 'error: not one "The answer is ... ." sentence'
            ELSE 'ok' END AS parse_status,
       w AS width, h AS height,
       g['error'] AS error,
       g['latency_ms'] AS latency_ms
FROM (SELECT *, parse_boxes(CASE WHEN task = 'pointing' THEN g['text'] END, 'pixel', w, h) AS chosen
      FROM extracted);

CREATE OR REPLACE VIEW scores AS
WITH judged AS (
    SELECT s.task,
           CASE WHEN p.answer = CASE WHEN s.task = 'pointing'
                    THEN format_boxes([s.boxes[CAST(s.answers[1] AS BIGINT)]], 'model', 'pixel', p.width, p.height)
                    ELSE regexp_replace((regexp_match('The answer is ' || s.target || ' .', 'The answer is (.+?)\.'))[1],
                                        '^\s+|\s+$', '', 'g') END
                THEN 1.0 ELSE 0.0 END AS hit
    FROM samples s JOIN predictions p USING (sample_id)
)
SELECT task, 'accuracy' AS metric, AVG(hit) AS value, COUNT(*) AS n,
       'exact match of the extracted answer (Shikra PointQA)' AS variant
FROM judged GROUP BY task
UNION ALL
SELECT task, 'truncated', CAST(SUM(CASE WHEN parse_status = 'truncated' THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows cut by max_new_tokens'
FROM predictions GROUP BY task
UNION ALL
SELECT task, 'failed', CAST(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE), COUNT(*), 'rows with an error'
FROM predictions GROUP BY task;

SELECT * FROM scores ORDER BY task, metric;
