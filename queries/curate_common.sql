-- The first step of every curate_<task>.sql, run before it by `vista curate` (docs/curate.md):
-- image de-duplication by perceptual hash, per-object flags, and contour sequences.
--
-- Inputs (schemas/): images, instances, categories. Parameters: $phash_distance, $min_area,
-- $points, $style, $seed, $negatives_per_image.
-- Outputs: image (with duplicate_of), object (instances with their image's size and path and
-- a crowd/tiny flag), absent_category (a view: $negatives_per_image categories each image
-- lacks, the no-target expressions of GREC/GRES/VQA), object_sequence (a view: contour
-- sequence, target text and reconstruction IoU with each object's columns). Views are computed only by the
-- tasks that read them.

-- pHash of every image; `$phash_distance` < 0 turns de-duplication off and reads no image.
CREATE TABLE image_hash AS
SELECT image_id,
       image_phash(read_bytes(image_path, on_error => 'null'), on_error => 'null') AS phash
FROM images
WHERE $phash_distance >= 0;

-- Two hashes within distance d agree exactly on at least one of d + 1 disjoint bit bands
-- (pigeonhole), so an equi-join on bands finds every near pair without comparing all pairs.
CREATE TABLE image_band AS
SELECT image_id, phash, band_no,
       (phash >> (band_no * band_bits)) & ((CAST(1 AS BIGINT) << band_bits) - 1) AS band
FROM (
  SELECT image_id, phash, unnest(range(0, $phash_distance + 1)) AS band_no,
         LEAST(64 / ($phash_distance + 1), 62) AS band_bits
  FROM image_hash
  WHERE phash IS NOT NULL
) b;

-- An image is a duplicate when an image with a smaller id is within the distance.
CREATE TABLE duplicate_image AS
SELECT b.image_id, MIN(a.image_id) AS duplicate_of
FROM image_band a
JOIN image_band b
  ON a.band_no = b.band_no AND a.band = b.band AND a.image_id < b.image_id
WHERE hamming_distance(a.phash, b.phash) <= $phash_distance
GROUP BY b.image_id;

CREATE TABLE image AS
SELECT i.image_id, i.image_path, i.width, i.height, d.duplicate_of
FROM images i
LEFT JOIN duplicate_image d ON d.image_id = i.image_id;

-- A view, not a table: it streams (every object is read where it is used, never held).
CREATE VIEW object AS
SELECT o.instance_id, o.image_id, o.category_id, o.category, o.box, o.area, o.iscrowd, o.mask,
       i.image_path, i.width, i.height, i.duplicate_of,
       CASE WHEN o.iscrowd THEN 'crowd' WHEN o.area < $min_area THEN 'tiny' END AS object_flag
FROM instances o
JOIN image i ON i.image_id = o.image_id;

-- Categories an image lacks, a seeded choice of $negatives_per_image per image.
CREATE VIEW absent_category AS
SELECT image_id, category_id, category
FROM (
  SELECT i.image_id, c.category_id, c.name AS category,
         ROW_NUMBER() OVER (
           PARTITION BY i.image_id
           ORDER BY stable_hash(i.image_id || ':' || CAST(c.category_id AS VARCHAR), $seed),
                    c.category_id) AS pick
  FROM image i
  CROSS JOIN categories c
  LEFT JOIN (SELECT DISTINCT image_id, category_id FROM object) p
    ON p.image_id = i.image_id AND p.category_id = c.category_id
  WHERE p.image_id IS NULL
) a
WHERE pick <= $negatives_per_image;

-- Every object with its contour sequence, target text and reconstruction IoU. It carries the
-- object's columns so that no task joins it back to `object`: a join on instance_id would hold
-- one whole side (masks included) in a hash table, which cannot spill.
-- The target text is what a model is trained to write, so the reconstruction IoU redraws the
-- mask from that text (after its rounding or binning), not from the unrounded sequence.
CREATE VIEW object_sequence AS
SELECT t.*,
       mask_iou(
         polygon_to_mask(
           parse_polygons(target, space => 'pixel', width => width, height => height)['polygons'][1],
           width, height, space => 'pixel'),
         mask) AS recon_iou
FROM (
  SELECT s.*, format_points(seq, style => $style) AS target
  FROM (
    SELECT o.*,
           mask_to_sequence(mask, n => $points, method => 'adaptive', space => 'square',
                            on_error => 'null') AS seq
    FROM object o
  ) s
) t;
