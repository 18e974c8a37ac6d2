-- Shapes the raw tables of `vista synth` into samples (schemas/samples.json), every task at
-- once. A script: each step is materialised (CREATE TABLE ... AS), the last statement returns
-- the samples. Run by `vista synth` (or `vista synth --query edited-copy.sql`), which registers
-- the raw tables and binds the parameters.
--
-- Raw tables: images (schemas/images.json), scenes (image_id, idx, background, salt),
--   objects (image_id, object_id, z, cell, shape, color, size, position, box, area, mask, point),
--   vocab (kind, value, idx, plural, article, phrase).
-- Parameters: $seed, $n (samples per task), $points (contour points per mask), $style
--   ('bins' | 'decimal'), $split, $source.
--
-- Every candidate sample of a task falls in a group (e.g. GREC: none / one / many targets) and
-- a subgroup (the kind of expression); samples are dealt round-robin over groups, then
-- subgroups, then images, so that the first $n of a task cover all of them evenly. Candidates
-- are shuffled by `(k * salt) % 2147483647`, a permutation of k for an image's random salt, so
-- that the choice is random yet the same on every run.

CREATE TABLE img AS
SELECT i.image_id, i.image, i.width, i.height, s.idx, s.background, s.salt
FROM images i JOIN scenes s ON s.image_id = i.image_id;

-- Objects with the words the templates need.
CREATE TABLE obj AS
SELECT o.image_id, o.object_id, o.cell, o.shape, o.color, o.size, o.position, o.box, o.point,
       o.mask, sv.plural, sv.article, pv.phrase, i.idx, i.salt
FROM objects o
JOIN img i ON i.image_id = o.image_id
JOIN vocab sv ON sv.kind = 'shape' AND sv.value = o.shape
JOIN vocab pv ON pv.kind = 'position' AND pv.value = o.position;

CREATE TABLE attribute AS
SELECT image_id, 'shape' AS kind, shape AS value, object_id FROM obj
UNION ALL SELECT image_id, 'color' AS kind, color AS value, object_id FROM obj
UNION ALL SELECT image_id, 'size' AS kind, size AS value, object_id FROM obj
UNION ALL SELECT image_id, 'position' AS kind, position AS value, object_id FROM obj;

-- Two-image tasks pair each image with the next three. Candidates carry the second image's id
-- and the image bytes join in at the end: the candidate table holds several rows per image, and
-- at 10,000 samples per task their PNG bytes would pass the 2 GiB a column's 32-bit offsets reach.
CREATE TABLE pair AS
SELECT a.image_id AS a_id, b.image_id AS b_id, a.idx, a.salt, d.step
FROM img a
CROSS JOIN (VALUES (1), (2), (3)) AS d(step)
JOIN img b ON b.idx = a.idx + d.step;

-- Attribute filters an expression can name ("the red circle", "small squares"), the objects
-- each matches, and the filter as a singular expression (one target: REC/RES, VQA), a plural
-- one (GREC/GRES) and an indefinite phrase (NLVR), with a shuffle key.
CREATE TABLE expression AS
WITH
descriptor AS (
  SELECT DISTINCT image_id, kind, shape, color, size, position FROM (
    SELECT image_id, 'shape' AS kind, shape, CAST(NULL AS VARCHAR) AS color,
           CAST(NULL AS VARCHAR) AS size, CAST(NULL AS VARCHAR) AS position FROM obj
    UNION ALL SELECT image_id, 'color' AS kind, NULL AS shape, color, NULL AS size,
           NULL AS position FROM obj
    UNION ALL SELECT image_id, 'color_shape' AS kind, shape, color, NULL AS size,
           NULL AS position FROM obj
    UNION ALL SELECT image_id, 'size' AS kind, NULL AS shape, NULL AS color, size,
           NULL AS position FROM obj
    UNION ALL SELECT image_id, 'size_shape' AS kind, shape, NULL AS color, size,
           NULL AS position FROM obj
    UNION ALL SELECT image_id, 'size_color_shape' AS kind, shape, color, size,
           NULL AS position FROM obj
    UNION ALL SELECT image_id, 'position' AS kind, NULL AS shape, NULL AS color, NULL AS size,
           position FROM obj
    UNION ALL SELECT image_id, 'shape_position' AS kind, shape, NULL AS color, NULL AS size,
           position FROM obj
    UNION ALL SELECT i.image_id, 'shape' AS kind, v.value AS shape, NULL AS color, NULL AS size,
           NULL AS position
      FROM img i CROSS JOIN vocab v WHERE v.kind = 'shape'
    UNION ALL SELECT i.image_id, 'color' AS kind, NULL AS shape, v.value AS color, NULL AS size,
           NULL AS position
      FROM img i CROSS JOIN vocab v WHERE v.kind = 'color'
    UNION ALL SELECT i.image_id, 'color_shape' AS kind, s.value AS shape, c.value AS color,
           NULL AS size, NULL AS position
      FROM img i CROSS JOIN vocab s CROSS JOIN vocab c WHERE s.kind = 'shape' AND c.kind = 'color'
  ) d
),

target_set AS (
  SELECT d.image_id, d.kind, d.shape, d.color, d.size, d.position,
         COUNT(o.object_id) AS n_targets,
         MIN(o.object_id) AS object_id,
         array_agg(o.object_id ORDER BY o.cell) FILTER (WHERE o.object_id IS NOT NULL) AS object_ids
  FROM descriptor d
  LEFT JOIN obj o ON o.image_id = d.image_id
    AND (d.shape IS NULL OR o.shape = d.shape) AND (d.color IS NULL OR o.color = d.color)
    AND (d.size IS NULL OR o.size = d.size) AND (d.position IS NULL OR o.position = d.position)
  GROUP BY d.image_id, d.kind, d.shape, d.color, d.size, d.position
)
SELECT t.*, i.idx, i.salt,
  CASE t.kind
    WHEN 'shape' THEN 'the ' || t.shape
    WHEN 'color' THEN 'the ' || t.color || ' object'
    WHEN 'color_shape' THEN 'the ' || t.color || ' ' || t.shape
    WHEN 'size' THEN 'the ' || t.size || ' object'
    WHEN 'size_shape' THEN 'the ' || t.size || ' ' || t.shape
    WHEN 'size_color_shape' THEN 'the ' || t.size || ' ' || t.color || ' ' || t.shape
    WHEN 'position' THEN 'the object ' || pv.phrase
    WHEN 'shape_position' THEN 'the ' || t.shape || ' ' || pv.phrase
  END AS singular,
  CASE t.kind
    WHEN 'shape' THEN sv.plural
    WHEN 'color' THEN t.color || ' objects'
    WHEN 'color_shape' THEN t.color || ' ' || sv.plural
    WHEN 'size' THEN t.size || ' objects'
    WHEN 'size_shape' THEN t.size || ' ' || sv.plural
    WHEN 'size_color_shape' THEN t.size || ' ' || t.color || ' ' || sv.plural
  END AS plural,
  CASE t.kind
    WHEN 'shape' THEN sv.article || ' ' || t.shape
    WHEN 'color' THEN 'a ' || t.color || ' object'
    WHEN 'color_shape' THEN 'a ' || t.color || ' ' || t.shape
  END AS indefinite,
  ((1 + COALESCE(sv.idx, 9) + 10 * COALESCE(cv.idx, 9) + 100 * COALESCE(zv.idx, 9)
      + 1000 * COALESCE(pv.idx, 9) + 10000 * length(t.kind)) * i.salt) % 2147483647 AS key
FROM target_set t
JOIN img i ON i.image_id = t.image_id
LEFT JOIN vocab sv ON sv.kind = 'shape' AND sv.value = t.shape
LEFT JOIN vocab cv ON cv.kind = 'color' AND cv.value = t.color
LEFT JOIN vocab zv ON zv.kind = 'size' AND zv.value = t.size
LEFT JOIN vocab pv ON pv.kind = 'position' AND pv.value = t.position;

-- Every candidate sample of every task, ranked.
CREATE TABLE ranked AS
WITH
-- Captions: the objects in reading order, listed three ways.
listed AS (
  SELECT image_id, cell,
    ROW_NUMBER() OVER (PARTITION BY image_id ORDER BY cell) AS r,
    COUNT(*) OVER (PARTITION BY image_id) AS n,
    'a ' || size || ' ' || color || ' ' || shape AS full_np,
    'a ' || color || ' ' || shape AS short_np,
    'a ' || color || ' ' || shape || ' ' || phrase AS placed_np
  FROM obj
),
caption_parts AS (
  SELECT image_id, MAX(n) AS n,
    CAST(string_agg(CASE WHEN r = 1 THEN full_np WHEN r = n THEN ' and ' || full_np
                         ELSE ', ' || full_np END, '' ORDER BY r) AS VARCHAR) AS full_list,
    CAST(string_agg(CASE WHEN r = 1 THEN short_np WHEN r = n THEN ' and ' || short_np
                         ELSE ', ' || short_np END, '' ORDER BY r) AS VARCHAR) AS short_list,
    CAST(string_agg(CASE WHEN r = 1 THEN placed_np WHEN r = n THEN ' and ' || placed_np
                         ELSE ', ' || placed_np END, '' ORDER BY r) AS VARCHAR) AS placed_list
  FROM listed GROUP BY image_id
),

attribute_count AS (
  SELECT image_id, kind, value, COUNT(*) AS n, MIN(object_id) AS object_id
  FROM attribute GROUP BY image_id, kind, value
),
-- Co-segmentation: the two images share exactly one value of the attribute, and each has
-- exactly one object with it.
common AS (
  SELECT p.a_id, p.b_id, p.idx, p.salt, p.step, x.kind,
         MIN(x.object_id) AS a_object, MIN(y.object_id) AS b_object
  FROM pair p
  JOIN attribute_count x ON x.image_id = p.a_id
  JOIN attribute_count y ON y.image_id = p.b_id AND y.kind = x.kind AND y.value = x.value
  GROUP BY p.a_id, p.b_id, p.idx, p.salt, p.step, x.kind
  HAVING COUNT(*) = 1 AND MAX(x.n) = 1 AND MAX(y.n) = 1
),

candidate AS (
  SELECT 'caption' AS task, 'caption' AS grp, 'caption' AS sub, c.image_id, i.idx,
         i.salt AS key,
         CAST(NULL AS VARCHAR) AS q,
         c.full_list || ' on a ' || i.background || ' background' AS answer,
         make_array(
           c.full_list || ' on a ' || i.background || ' background',
           c.short_list,
           CASE c.n WHEN 1 THEN 'one shape' WHEN 2 THEN 'two shapes' WHEN 3 THEN 'three shapes'
             WHEN 4 THEN 'four shapes' WHEN 5 THEN 'five shapes' WHEN 6 THEN 'six shapes'
             WHEN 7 THEN 'seven shapes' WHEN 8 THEN 'eight shapes' ELSE 'nine shapes' END
             || ' on a ' || i.background || ' background: ' || c.short_list,
           c.placed_list,
           'a ' || i.background || ' background with ' || c.full_list) AS answers,
         CAST(NULL AS VARCHAR) AS expr_kind,
         CAST(NULL AS VARCHAR) AS object_id,
         CAST(NULL AS VARCHAR) AS object2_id,
         CAST(NULL AS VARCHAR) AS image2_id
  FROM caption_parts c JOIN img i ON i.image_id = c.image_id

  -- VQA: counting (any shape or colour of the vocabulary, so zero too), and the colour, shape,
  -- size or position of an object named unambiguously.
  UNION ALL
  SELECT 'vqa' AS task, 'count' AS grp, e.kind AS sub, e.image_id, e.idx, e.key,
         CASE e.kind WHEN 'shape' THEN 'How many ' || sv.plural || ' are there?'
                     ELSE 'How many ' || e.color || ' objects are there?' END AS q,
         CAST(e.n_targets AS VARCHAR) AS answer, NULL AS answers, NULL AS expr_kind,
         NULL AS object_id, NULL AS object2_id, NULL AS image2_id
  FROM expression e LEFT JOIN vocab sv ON sv.kind = 'shape' AND sv.value = e.shape
  WHERE e.kind IN ('shape', 'color')
  UNION ALL
  SELECT 'vqa' AS task, 'count' AS grp, 'all' AS sub, image_id, idx, salt AS key,
         'How many shapes are there?' AS q, CAST(COUNT(*) AS VARCHAR) AS answer, NULL AS answers,
         NULL AS expr_kind, NULL AS object_id, NULL AS object2_id, NULL AS image2_id
  FROM obj GROUP BY image_id, idx, salt
  UNION ALL
  SELECT 'vqa' AS task, a.kind AS grp, a.kind AS sub, e.image_id, e.idx, e.key,
         CASE a.kind
           WHEN 'color' THEN 'What color is the ' || o.shape || '?'
           WHEN 'shape' THEN 'What shape is the ' || o.color || ' object?'
           WHEN 'position' THEN 'Where is the ' || o.color || ' ' || o.shape || '?'
           ELSE 'Is the ' || o.color || ' ' || o.shape || ' small or large?' END AS q,
         a.value AS answer, NULL AS answers, NULL AS expr_kind, NULL AS object_id,
         NULL AS object2_id, NULL AS image2_id
  FROM expression e
  JOIN obj o ON o.object_id = e.object_id
  JOIN attribute a ON a.object_id = o.object_id
  -- The question names the object by what it does not ask: its shape for its colour, its
  -- colour for its shape, both for its position and size.
  WHERE e.n_targets = 1 AND ((a.kind = 'color' AND e.kind = 'shape')
     OR (a.kind = 'shape' AND e.kind = 'color')
     OR (a.kind IN ('position', 'size') AND e.kind = 'color_shape'))

  -- REC / RES: expressions that name exactly one object.
  UNION ALL
  SELECT t.task, e.kind AS grp, e.kind AS sub, e.image_id, e.idx, e.key, e.singular AS q,
         NULL AS answer, NULL AS answers, e.kind AS expr_kind, e.object_id, NULL AS object2_id,
         NULL AS image2_id
  FROM expression e CROSS JOIN (VALUES ('rec'), ('res')) AS t(task)
  WHERE e.n_targets = 1 AND e.singular IS NOT NULL

  -- GREC / GRES: plural expressions with no, one or several targets.
  UNION ALL
  SELECT t.task, CASE e.n_targets WHEN 0 THEN 'none' WHEN 1 THEN 'one' ELSE 'many' END AS grp,
         e.kind AS sub, e.image_id, e.idx, e.key, e.plural AS q, NULL AS answer, NULL AS answers,
         e.kind AS expr_kind, NULL AS object_id, NULL AS object2_id, NULL AS image2_id
  FROM expression e CROSS JOIN (VALUES ('grec'), ('gres')) AS t(task)
  WHERE e.plural IS NOT NULL

  -- Region captioning: describe the object in a box.
  UNION ALL
  SELECT 'region_caption' AS task, 'region' AS grp, 'region' AS sub, o.image_id, o.idx,
         (o.cell + 1) * o.salt % 2147483647 AS key, NULL AS q,
         'a ' || o.size || ' ' || o.color || ' ' || o.shape AS answer,
         make_array('a ' || o.size || ' ' || o.color || ' ' || o.shape,
                    'a ' || o.color || ' ' || o.shape,
                    'a ' || o.size || ' ' || o.color || ' ' || o.shape || ' ' || o.phrase,
                    o.size || ' ' || o.color || ' ' || o.shape) AS answers,
         NULL AS expr_kind, o.object_id, NULL AS object2_id, NULL AS image2_id
  FROM obj o

  -- PointQA: a question about the object under a point.
  UNION ALL
  SELECT 'pointqa' AS task, a.kind AS grp, a.kind AS sub, o.image_id, o.idx,
         (o.cell + 1) * o.salt % 2147483647 AS key,
         CASE a.kind WHEN 'color' THEN 'What color is the object at this point?'
                     WHEN 'shape' THEN 'What shape is the object at this point?'
                     ELSE 'Is the object at this point small or large?' END AS q,
         a.value AS answer, NULL AS answers, NULL AS expr_kind, o.object_id, NULL AS object2_id,
         NULL AS image2_id
  FROM obj o JOIN attribute a ON a.object_id = o.object_id AND a.kind IN ('color', 'shape', 'size')

  -- Two images: a statement about both, true or false (NLVR-style); "only the first image
  -- contains X" asks which image has X.
  UNION ALL
  SELECT 'nlvr' AS task, CASE WHEN st.truth THEN 'true' ELSE 'false' END AS grp, st.kind AS sub,
         st.a_id AS image_id, st.idx, st.key, st.statement AS q,
         CASE WHEN st.truth THEN 'true' ELSE 'false' END AS answer, NULL AS answers,
         st.kind AS expr_kind, NULL AS object_id, st.b_id AS object2_id, st.b_id AS image2_id
  FROM (
    SELECT p.a_id, p.b_id, p.idx, s.kind, (p.step * 7 + x.key + s.n) % 2147483647 AS key,
           CASE s.kind WHEN 'both' THEN 'Both images contain ' || x.indefinite || '.'
                       WHEN 'first' THEN 'Only the first image contains ' || x.indefinite || '.'
                       ELSE 'Only the second image contains ' || x.indefinite || '.' END AS statement,
           CASE s.kind WHEN 'both' THEN x.n_targets > 0 AND y.n_targets > 0
                       WHEN 'first' THEN x.n_targets > 0 AND y.n_targets = 0
                       ELSE x.n_targets = 0 AND y.n_targets > 0 END AS truth
    FROM pair p
    JOIN expression x ON x.image_id = p.a_id
    JOIN expression y ON y.image_id = p.b_id AND y.kind = x.kind
      AND COALESCE(y.shape, '') = COALESCE(x.shape, '')
      AND COALESCE(y.color, '') = COALESCE(x.color, '')
    CROSS JOIN (VALUES ('both', 1), ('first', 2), ('second', 3)) AS s(kind, n)
    WHERE x.kind IN ('shape', 'color', 'color_shape') AND (x.n_targets > 0 OR y.n_targets > 0)
  ) st

  -- Attribute co-segmentation: segment, in both images, the object with the shared attribute.
  UNION ALL
  SELECT 'coseg' AS task, c.kind AS grp, c.kind AS sub, c.a_id AS image_id, c.idx,
         (c.step * 7 + c.salt) % 2147483647 AS key, 'same ' || c.kind AS q, NULL AS answer,
         NULL AS answers, c.kind AS expr_kind, c.a_object AS object_id, c.b_object AS object2_id,
         c.b_id AS image2_id
  FROM common c
),

-- Round-robin over groups, subgroups and images (see the top of the file).
by_image AS (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY task, grp, sub, image_id
                               ORDER BY key, q, answer, object_id, object2_id) AS r_image
  FROM candidate
),
by_sub AS (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY task, grp, sub ORDER BY r_image, key, idx) AS r_sub
  FROM by_image
),
by_grp AS (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY task, grp ORDER BY r_sub, sub) AS r_grp
  FROM by_sub
),
picked AS (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY task ORDER BY r_grp, grp) AS k
  FROM by_grp
)
SELECT task, k, grp, sub, image_id, q, answer, answers, expr_kind, object_id, object2_id,
       image2_id
FROM picked;

-- The first $n of each task, with their ground truth (the objects a sample is about, in reading
-- order; two images: first, second) formatted as the model's target text.
WITH
chosen AS (
  SELECT * FROM ranked WHERE k <= CAST($n AS BIGINT)
),
chosen_object AS (
  SELECT task, k, 0 AS ord, object_id FROM chosen
  WHERE object_id IS NOT NULL AND task IN ('rec', 'res', 'region_caption', 'coseg')
  UNION ALL
  SELECT task, k, 1 AS ord, object2_id AS object_id FROM chosen WHERE task = 'coseg'
  UNION ALL
  SELECT c.task, c.k, o.cell AS ord, o.object_id
  FROM chosen c
  JOIN expression e ON e.image_id = c.image_id AND e.kind = c.expr_kind AND e.plural = c.q
  JOIN obj o ON o.image_id = c.image_id AND array_has(e.object_ids, o.object_id)
  WHERE c.task IN ('grec', 'gres')
),
truth AS (
  SELECT co.task, co.k,
         array_agg(o.box ORDER BY co.ord) AS boxes,
         array_agg(rle_encode(o.mask) ORDER BY co.ord) AS rles,
         -- Training targets take the slower local search: synthetic masks are small and few.
         array_agg(mask_to_sequence(o.mask, n => CAST($points AS BIGINT), method => 'refined',
                                    space => 'square') ORDER BY co.ord) AS seqs
  FROM chosen_object co JOIN obj o ON o.object_id = co.object_id
  GROUP BY co.task, co.k
),
named AS (
  SELECT c.*, t.boxes, t.rles, t.seqs, i.image, i2.image AS image2, i.width, i.height,
    CASE c.task WHEN 'region_caption' THEN o.box WHEN 'pointqa' THEN o.point END AS points,
    'synth-s' || CAST($seed AS VARCHAR) || '-' || c.task || '-' || lpad(CAST(c.k AS VARCHAR), 5, '0')
      AS sample_id,
    CASE c.task
      WHEN 'region_caption' THEN format_boxes(o.box, style => CAST($style AS VARCHAR),
                                              space => 'pixel', width => i.width, height => i.height)
      WHEN 'pointqa' THEN format_points(o.point, style => CAST($style AS VARCHAR), space => 'pixel',
                                        width => i.width, height => i.height, kind => 'point')
    END AS region
  FROM chosen c
  LEFT JOIN truth t ON t.task = c.task AND t.k = c.k
  LEFT JOIN obj o ON o.object_id = c.object_id
  JOIN img i ON i.image_id = c.image_id
  LEFT JOIN img i2 ON i2.image_id = c.image2_id
)
SELECT
  x.sample_id,
  x.task,
  x.image_id,
  CASE WHEN x.image2 IS NULL THEN x.image END AS image,
  CAST(NULL AS VARCHAR) AS image_path,
  CASE WHEN x.image2 IS NOT NULL THEN make_array(x.image, x.image2) END AS images,
  x.width,
  x.height,
  vista_prompt(x.task, x.q, style => CAST($style AS VARCHAR), seed => x.sample_id,
               region => x.region, n_points => CAST($points AS BIGINT)) AS instruction,
  CASE
    WHEN x.task IN ('rec', 'grec') THEN
      format_boxes(COALESCE(x.boxes, []), style => CAST($style AS VARCHAR), space => 'pixel',
                   width => x.width, height => x.height)
    WHEN x.task IN ('res', 'gres', 'coseg') THEN
      format_points(COALESCE(x.seqs, []), style => CAST($style AS VARCHAR))
    ELSE x.answer
  END AS target,
  CASE WHEN x.task = 'vqa' THEN array_repeat(x.answer, 10)
       WHEN x.task IN ('pointqa', 'nlvr') THEN make_array(x.answer)
       ELSE x.answers END AS answers,
  CASE WHEN x.task IN ('rec', 'res', 'grec', 'gres', 'region_caption', 'coseg')
       THEN COALESCE(x.boxes, []) END AS boxes,
  CASE WHEN x.task IN ('res', 'gres', 'coseg') THEN COALESCE(x.rles, []) END AS masks,
  x.points,
  CAST($split AS VARCHAR) AS split,
  CAST($source AS VARCHAR) AS source
FROM named x
ORDER BY CASE x.task WHEN 'caption' THEN 0 WHEN 'vqa' THEN 1 WHEN 'rec' THEN 2 WHEN 'res' THEN 3
                     WHEN 'grec' THEN 4 WHEN 'gres' THEN 5 WHEN 'region_caption' THEN 6
                     WHEN 'pointqa' THEN 7 WHEN 'nlvr' THEN 8 ELSE 9 END,
         x.k
