-- The last step of every curation job, run by `vista curate` after curate_<task>.sql
-- (docs/curate.md): the task script defines the view `sample` (every candidate in the samples
-- layout, with `class`, `pre_drop` (NULL or the filter that removed it) and `recon_iou`); this
-- keeps at most $max_per_class candidates per class, chosen by a seeded shuffle, and names
-- the filter of every dropped candidate in `dropped_by`.
SELECT *,
       CASE WHEN pre_drop IS NOT NULL THEN pre_drop
            WHEN $max_per_class > 0 AND ROW_NUMBER() OVER (
                   PARTITION BY class, pre_drop IS NULL
                   ORDER BY stable_hash(sample_id, $seed), sample_id) > $max_per_class
            THEN 'balance' END AS dropped_by
FROM sample
ORDER BY sample_id;
