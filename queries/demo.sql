-- The demo job (`vista demo`): every task of a synthetic sample set through the model once,
-- parsed by task, scored with the reference-exact metrics, plus the contour family's
-- reconstruction IoU of the ground-truth masks (adaptive vs uniform sampling, 32 points).
--
-- A job file (docs/eval.md): `predictions` reads `samples` (schemas/samples.json) and returns
-- one row per sample; `scores` reads `predictions` and `samples` and returns the long-form
-- scores table (schemas/scores.json). Synthetic samples carry their full instruction (made by
-- `vista_prompt` in queries/synth_samples.sql), so it is passed to the model as it is.

-- DataFusion 55 would copy the model call into every `g['field']` it pushes down; keep it one.
SET datafusion.optimizer.enable_leaf_expression_pushdown = false;

CREATE OR REPLACE VIEW predictions AS
WITH generated AS (
    SELECT sample_id, task, instruction, width, height,
           vista_generate(CASE WHEN images IS NOT NULL THEN images ELSE make_array(image) END,
                          instruction, output => 'detail') AS g
    FROM samples
),
parsed AS (
    SELECT sample_id, task, instruction, width, height, g,
           parse_answer(g['text']) AS a,
           parse_boxes(g['text'], 'pixel', width, height) AS b,
           parse_polygons(g['text'], 'pixel', width, height) AS m
    FROM generated
)
SELECT sample_id, task, instruction,
       g['text'] AS raw,
       a['answer'] AS answer,
       b['boxes'] AS boxes,
       polygon_to_mask(m['polygons'], width, height, space => 'pixel') AS masks,
       CASE WHEN g['truncated'] THEN 'truncated'
            WHEN task IN ('rec', 'grec') THEN b['status']
            WHEN task IN ('res', 'gres', 'coseg') THEN m['status']
            ELSE a['status'] END AS parse_status,
       g['error'] AS error,
       g['latency_ms'] AS latency_ms
FROM parsed;

CREATE OR REPLACE VIEW scores AS
WITH joined AS (
    SELECT p.*, s.answers AS ref_answers, s.target, s.boxes AS gt_boxes, s.masks AS gt_masks,
           s.width, s.height
    FROM predictions p JOIN samples s USING (sample_id)
),
caption AS (
    SELECT cider_d(COALESCE(answer, ''), ref_answers) AS c, COUNT(*) AS n
    FROM joined WHERE task = 'caption'
),
region_caption AS (
    SELECT cider_d(COALESCE(answer, ''), ref_answers) AS c, COUNT(*) AS n
    FROM joined WHERE task = 'region_caption'
),
res AS (
    SELECT res_score(masks[1], gt_masks[1]) AS r FROM joined WHERE task = 'res'
),
grec AS (
    SELECT grec_score(boxes, gt_boxes) AS r, COUNT(*) AS n FROM joined WHERE task = 'grec'
),
gres AS (
    SELECT gres_score(masks, gt_masks) AS r, COUNT(*) AS n FROM joined WHERE task = 'gres'
),
contour AS (
    SELECT mask_iou(masks[1], polygon_to_mask(mask_to_sequence(masks[1], 32, 'adaptive'),
                                              width, height)) AS adaptive,
           mask_iou(masks[1], polygon_to_mask(mask_to_sequence(masks[1], 32, 'uniform'),
                                              width, height)) AS uniform
    FROM samples WHERE task = 'res'
)
SELECT 'caption' AS task, 'cider_d' AS metric, c['score'] AS value, n, 'cider_d/ptb' AS variant
FROM caption
UNION ALL
SELECT 'vqa', 'vqa_accuracy', AVG(COALESCE(vqa_accuracy(answer, ref_answers), 0.0)), COUNT(*),
       'vqa/current'
FROM joined WHERE task = 'vqa'
UNION ALL
SELECT 'rec', 'acc@0.5',
       AVG(CASE WHEN box_iou(boxes[1], gt_boxes[1]) > 0.5 THEN 1.0 ELSE 0.0 END), COUNT(*),
       'iou>0.5'
FROM joined WHERE task = 'rec'
UNION ALL SELECT 'res', 'miou', r['miou'], r['n'], 'res' FROM res
UNION ALL SELECT 'grec', 'precision_f1_1', r['precision_f1_1'], n, 'grec/giou>=0.5' FROM grec
UNION ALL SELECT 'grec', 'n_acc', r['n_acc'], n, 'grec/giou>=0.5' FROM grec
UNION ALL SELECT 'gres', 'giou', r['giou'], n, 'rela' FROM gres
UNION ALL SELECT 'gres', 'n_acc', r['n_acc'], n, 'rela' FROM gres
UNION ALL
SELECT 'nlvr', 'accuracy', AVG(CASE WHEN answer = lower(target) THEN 1.0 ELSE 0.0 END), COUNT(*),
       'exact match'
FROM joined WHERE task = 'nlvr'
UNION ALL
-- One reference answer: the VQA formula (leave-one-out over ten answers) would score 0.
SELECT 'pointqa', 'accuracy', AVG(CASE WHEN answer = lower(target) THEN 1.0 ELSE 0.0 END),
       COUNT(*), 'exact match'
FROM joined WHERE task = 'pointqa'
UNION ALL
SELECT 'region_caption', 'cider_d', c['score'], n, 'cider_d/ptb' FROM region_caption
UNION ALL
SELECT 'coseg', 'miou',
       AVG((COALESCE(mask_iou(masks[1], gt_masks[1]), 0.0)
            + COALESCE(mask_iou(masks[2], gt_masks[2]), 0.0)) / 2), COUNT(*),
       'mean IoU of both images'
FROM joined WHERE task = 'coseg'
UNION ALL
SELECT 'all', 'parsed', AVG(CASE WHEN parse_status = 'ok' THEN 1.0 ELSE 0.0 END), COUNT(*),
       'parse_status = ok'
FROM predictions
UNION ALL
-- Answers cut by vista.max_new_tokens (vista demo sets 400: a 32-point mask answer takes about
-- 130 tokens) are counted, never scored as if complete.
SELECT 'all', 'truncated', AVG(CASE WHEN parse_status = 'truncated' THEN 1.0 ELSE 0.0 END),
       COUNT(*), 'answers cut by max_new_tokens'
FROM predictions
UNION ALL
SELECT 'res', 'gt_contour_iou@32_adaptive', AVG(adaptive), COUNT(*), 'mask_to_sequence adaptive'
FROM contour
UNION ALL
SELECT 'res', 'gt_contour_iou@32_uniform', AVG(uniform), COUNT(*), 'mask_to_sequence uniform'
FROM contour;

SELECT * FROM scores ORDER BY task, metric;
