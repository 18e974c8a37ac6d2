-- COCO caption results file (the official format, as coco-caption's loadRes reads it):
-- [{"image_id": ..., "caption": ...}] from the predictions of queries/eval_caption.sql. The
-- image id is the part of the sample id after its last '-' (`vista import coco-captions` writes
-- `<source>-<image_id>`); a row without an answer gets "".
--
--   vista sql --table predictions=out/predictions.parquet -f queries/results_coco_captions.sql \
--       --format json > captions_val2014_vista_results.json
SELECT CAST(regexp_replace(sample_id, '^.*-', '') AS BIGINT) AS image_id,
       COALESCE(answer, '') AS caption
FROM predictions
ORDER BY image_id;
