-- AttCoSeg (attribute-level co-segmentation): pairs of images that share exactly one value of
-- an attribute, with the one object in each image that has it. Attributes of every object:
-- `category`; `color` (mask_color of its pixels); `size` (COCO's small < 32^2 <= medium <
-- 96^2 <= large, by area); `position` (left / center / right third, by box centre).
-- Images where a value is held by exactly one object are paired within each (attribute, value)
-- by a seeded shuffle (1st with 2nd, 3rd with 4th, ...); a pair that shares a second value of
-- the same attribute is `ambiguous`. Target: both objects' contour points, in image order,
-- each in its image's square frame. Balanced per attribute and value.
-- Run by `vista curate attcoseg` after curate_common.sql (reads the image files).

CREATE TABLE attribute AS
SELECT instance_id, image_id, 'category' AS kind, category AS value FROM object
UNION ALL
SELECT instance_id, image_id, 'color' AS kind,
       mask_color(read_bytes(image_path, on_error => 'null'), mask, on_error => 'null') AS value
FROM object
UNION ALL
SELECT instance_id, image_id, 'size' AS kind,
       CASE WHEN area < 1024 THEN 'small' WHEN area < 9216 THEN 'medium' ELSE 'large' END AS value
FROM object
UNION ALL
SELECT instance_id, image_id, 'position' AS kind,
       CASE WHEN (box[1] + box[3]) / 2 < width / 3.0 THEN 'left'
            WHEN (box[1] + box[3]) / 2 < 2 * width / 3.0 THEN 'center'
            ELSE 'right' END AS value
FROM object;

CREATE TABLE holder AS
SELECT image_id, kind, value, MIN(instance_id) AS instance_id, COUNT(*) AS holders
FROM attribute
WHERE value IS NOT NULL
GROUP BY image_id, kind, value;

CREATE TABLE ranked AS
SELECT image_id, kind, value, instance_id,
       ROW_NUMBER() OVER (PARTITION BY kind, value
                          ORDER BY stable_hash(image_id, $seed), image_id) AS r
FROM holder
WHERE holders = 1;

CREATE TABLE pair AS
SELECT a.kind, a.value, a.image_id AS a_image, a.instance_id AS a_instance,
       b.image_id AS b_image, b.instance_id AS b_instance
FROM ranked a
JOIN ranked b ON b.kind = a.kind AND b.value = a.value AND b.r = a.r + 1
WHERE a.r % 2 = 1;

-- Values of the pair's attribute that both images have (1 = only the paired one).
CREATE TABLE shared AS
SELECT p.kind, p.a_image, p.b_image, COUNT(DISTINCT x.value) AS n_shared
FROM pair p
JOIN attribute x ON x.image_id = p.a_image AND x.kind = p.kind
JOIN attribute y ON y.image_id = p.b_image AND y.kind = p.kind AND y.value = x.value
GROUP BY p.kind, p.a_image, p.b_image;

CREATE VIEW sample AS
SELECT 'coco-attcoseg-' || p.kind || '-' || p.a_image || '-' || p.b_image AS sample_id,
       'coseg' AS task,
       p.a_image AS image_id,
       [read_bytes(oa.image_path, on_error => 'null'),
        read_bytes(ob.image_path, on_error => 'null')] AS images,
       oa.width, oa.height,
       vista_prompt('coseg', 'same ' || p.kind, style => $style,
                    seed => CAST($seed AS VARCHAR) || ':' || p.kind || ':' || p.a_image || ':'
                            || p.b_image,
                    region => NULL, n_points => $points, n_images => 2) AS instruction,
       format_points([oa.seq, ob.seq], style => $style) AS target,
       [oa.box, ob.box] AS boxes,
       [oa.mask, ob.mask] AS masks,
       $split AS split,
       $source AS source,
       p.kind || ':' || p.value AS class,
       CASE WHEN oa.object_flag IS NOT NULL THEN oa.object_flag
            WHEN ob.object_flag IS NOT NULL THEN ob.object_flag
            WHEN s.n_shared > 1 THEN 'ambiguous'
            WHEN oa.seq IS NULL OR ob.seq IS NULL THEN 'empty_mask'
            WHEN LEAST(oa.recon_iou, ob.recon_iou) < $min_iou THEN 'low_iou'
            WHEN oa.duplicate_of IS NOT NULL OR ob.duplicate_of IS NOT NULL
              THEN 'duplicate_image' END AS pre_drop,
       LEAST(oa.recon_iou, ob.recon_iou) AS recon_iou
FROM pair p
JOIN shared s ON s.kind = p.kind AND s.a_image = p.a_image AND s.b_image = p.b_image
JOIN object_sequence oa ON oa.instance_id = p.a_instance
JOIN object_sequence ob ON ob.instance_id = p.b_instance;
