-- VQAv2 leaderboard results (EvalAI, test-dev / test-std): [{"question_id": ..., "answer": ...}]
-- from the predictions of queries/eval_vqa.sql. The question id is the part of the sample id
-- after its last '-' (`vista import vqav2` writes `<source>-<question_id>`); a row without an
-- answer gets "" so every question is present, as the server requires.
--
--   vista sql --table predictions=out/predictions.parquet -f queries/results_vqav2.sql \
--       --format json > vqav2_test-dev_results.json
SELECT CAST(regexp_replace(sample_id, '^.*-', '') AS BIGINT) AS question_id,
       COALESCE(answer, '') AS answer
FROM predictions
ORDER BY question_id;
