//! Hostile input through the `vista` binary: image and prompt bombs, corrupt files, escapes from
//! the base directory, jobs that lose chunks or meet another job. Every case must end in a
//! one-line error (or a NULL with its reason under `on_error => 'null'`), never a panic or an
//! abort, and the bomb cases within a stated peak memory. The corpus is generated here, in
//! code, so the suite needs nothing but the binary.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir() -> String {
    root().join("tests/fixtures/model/tiny_xattn1_mha_coords").display().to_string()
}

/// What a finished `vista` process left: status, output and its own peak resident memory.
struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    peak_rss_mb: f64,
}

/// Runs `vista` in `dir`, waits for it with `wait4` (its own peak RSS, not that of other test
/// processes), and kills it after `limit` (a case that never ends fails instead of hanging CI).
// The child is reaped by `wait4`, which `Child` does not see.
#[allow(clippy::zombie_processes)]
fn vista(dir: &Path, args: &[&str], limit: Duration) -> Run {
    let out_path = dir.join(".stdout");
    let err_path = dir.join(".stderr");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vista"));
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap());
    // Its own process group, so that a timeout kills it whole.
    cmd.process_group(0);
    let child = cmd.spawn().expect("vista starts");
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4 failed");
        if start.elapsed() > limit {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            panic!("vista {args:?} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let read = |p: &Path| {
        let mut s = String::new();
        File::open(p).unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let exited = libc::WIFEXITED(status);
    Run {
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stdout: read(&out_path),
        stderr: read(&err_path),
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
    }
}

const MINUTE: Duration = Duration::from_secs(60);

fn ok(dir: &Path, args: &[&str]) -> Run {
    let r = vista(dir, args, 3 * MINUTE);
    assert_eq!(r.code, Some(0), "vista {args:?} failed: {}", r.stderr);
    r
}

/// A failure by exit status 1 with exactly one line on stderr; returns that line.
fn fails(dir: &Path, args: &[&str]) -> String {
    let r = vista(dir, args, 3 * MINUTE);
    assert_eq!(
        (r.code, r.signal),
        (Some(1), None),
        "vista {args:?} should fail with status 1: {}",
        r.stderr
    );
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "one-line error expected:\n{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r.stderr.trim_end().to_string()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::DynamicImage::ImageLuma8(image::GrayImage::new(w, h))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A 1 x 100000 PNG is 370 bytes and 30 GB once padded to a square: a row error, under every
/// policy, within a few hundred megabytes. Over-long instructions are refused before the model
/// allocates anything.
#[test]
fn image_and_prompt_bombs_are_row_errors() {
    let dir = tmp();
    std::fs::write(dir.path().join("thin.png"), png(1, 100_000)).unwrap();
    std::fs::write(dir.path().join("ok.png"), png(20, 20)).unwrap();
    let words = "word ".repeat(50_000);
    let sql = format!(
        "SELECT name, g['text'] IS NOT NULL AS answered, g['error'] AS error FROM (\
           SELECT name, vista_generate(read_bytes(name), instr, output => 'detail', on_error => 'null') AS g \
           FROM (VALUES ('thin.png', 'Describe <image>.'), ('ok.png', 'Describe <image>.'), \
                        ('ok.png', '{words} <image>')) AS t(name, instr)) ORDER BY name, error"
    );
    // One argument may hold at most 128 KiB: the query goes in a file.
    std::fs::write(dir.path().join("q.sql"), &sql).unwrap();
    let model = format!("model={}", model_dir());
    let r = vista(
        dir.path(),
        &["sql", "--set", &model, "--set", "max_new_tokens=2", "--format", "csv", "-f", "q.sql"],
        3 * MINUTE,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "name,answered,error");
    assert_eq!(
        lines[1],
        "ok.png,false,instruction of 250008 bytes cannot fit the model's context of 512 tokens"
    );
    assert_eq!(lines[2], "ok.png,true,");
    assert_eq!(
        lines[3],
        "thin.png,false,image 1: square-padded image of 100000x100000 (10000000000 pixels) \
         exceeds vista.max_image_pixels = 178956970"
    );
    assert!(r.peak_rss_mb < 600.0, "peak RSS {} MB", r.peak_rss_mb);

    // The same under the default policy: the query stops, naming the row, with status 1.
    let e = fails(
        dir.path(),
        &[
            "sql",
            "--set",
            &model,
            "-c",
            "SELECT vista_generate(read_bytes('thin.png'), 'Describe <image>.')",
        ],
    );
    assert!(e.contains("exceeds vista.max_image_pixels"), "{e}");
    // A smaller limit is a setting, and the decoder checks the header before decoding.
    let e = fails(
        dir.path(),
        &["sql", "--set", "max_image_pixels=100", "-c", "SELECT image_phash(read_bytes('ok.png'))"],
    );
    assert!(e.contains("image of 20x20 (400 pixels) exceeds vista.max_image_pixels = 100"), "{e}");
}

/// Corrupt and empty Parquet files, in every place a table is read, are one-line errors.
#[test]
fn corrupt_parquet_files_are_errors_not_panics() {
    let dir = tmp();
    let d = dir.path();
    ok(d, &["sql", "-c", "COPY (SELECT 1 AS a, 'x' AS b) TO 'good.parquet'"]);
    let mut bytes = std::fs::read(d.join("good.parquet")).unwrap();
    let n = bytes.len();
    // The footer length (the four bytes before the final PAR1) claims more than the file holds.
    bytes[n - 8..n - 4].copy_from_slice(&(n as u32 * 4).to_le_bytes());
    std::fs::write(d.join("bad.parquet"), &bytes).unwrap();
    std::fs::write(d.join("empty.parquet"), b"").unwrap();
    let e = fails(d, &["sql", "--table", "t=bad.parquet", "-c", "SELECT * FROM t"]);
    assert!(e.contains("corrupt Parquet file: its footer claims"), "{e}");
    let e = fails(d, &["sql", "--table", "t=empty.parquet", "-c", "SELECT * FROM t"]);
    assert!(e.contains("is not a Parquet file: 0 bytes"), "{e}");
    // As a URL table the reader itself meets the file.
    fails(d, &["sql", "-c", "SELECT * FROM 'bad.parquet'"]);
    let e = fails(d, &["check", "bad.parquet", "--schema", "samples"]);
    assert!(e.contains("corrupt Parquet file"), "{e}");
}

/// Masks and polygons that would make unbounded work or panics.
#[test]
fn mask_and_polygon_bombs_are_row_errors() {
    let dir = tmp();
    let d = dir.path();
    let e =
        fails(d, &["sql", "-c", "SELECT rle_decode(named_struct('size', [0, 5], 'counts', ''))"]);
    assert!(e.contains("a 5x0 mask has no pixels and no PNG form"), "{e}");
    let r = ok(
        d,
        &[
            "sql",
            "--format",
            "csv",
            "-c",
            "SELECT rle_decode(named_struct('size', [0, 5], 'counts', ''), 'png', on_error => 'null') IS NULL AS n",
        ],
    );
    assert_eq!(r.stdout, "n\ntrue\n");
    for coord in ["1e9", "1e300", "-1e9"] {
        let sql = format!(
            "SELECT polygon_to_mask([0.0, 0.0, {coord}, 5.0, 3.0, 9.0], 10, 10, space => 'pixel')"
        );
        let e = fails(d, &["sql", "-c", &sql]);
        assert!(e.contains("lies outside the 10x10 image by more than one image side"), "{e}");
    }
    let e = fails(
        d,
        &["sql", "-c", "SELECT polygon_to_mask([0.0, 0.0, 5.0, 5.0, 3.0, 9.0], 100000, 100000, space => 'pixel')"],
    );
    assert!(e.contains("exceeds the mask limit of 268435456 pixels"), "{e}");
    // A fractional RLE size is refused, not truncated.
    let e = fails(
        d,
        &["sql", "-c", "SELECT mask_area(named_struct('size', [2.5, 2.0], 'counts', [4]))"],
    );
    assert!(e.contains("RLE `size` must be [height, width] of whole numbers"), "{e}");
}

/// With `vista.base_dir`, reads and writes stay inside it; devices and pipes are never read.
#[test]
fn reads_and_writes_are_confined_to_the_base_directory() {
    let dir = tmp();
    let d = dir.path();
    let base = d.join("data");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("a.png"), png(3, 2)).unwrap();
    std::fs::write(d.join("secret.png"), png(3, 2)).unwrap();
    let base_set = format!("base_dir={}", base.display());
    let r = ok(
        d,
        &[
            "sql",
            "--set",
            &base_set,
            "--format",
            "csv",
            "-c",
            "SELECT image_width(read_bytes('a.png')) AS w",
        ],
    );
    assert_eq!(r.stdout, "w\n3\n");
    for path in ["../secret.png", "/etc/passwd"] {
        let sql = format!("SELECT read_bytes('{path}')");
        let e = fails(d, &["sql", "--set", &base_set, "-c", &sql]);
        assert!(e.contains("outside the base directory"), "{e}");
    }
    ok(d, &["sql", "-c", "COPY (SELECT 1 AS a) TO 'data/in.parquet'"]);
    ok(d, &["sql", "-c", "COPY (SELECT 1 AS a) TO 'out.parquet'"]);
    let e = fails(d, &["sql", "--set", &base_set, "-c", "SELECT * FROM 'out.parquet'"]);
    assert!(e.contains("outside vista.base_dir"), "{e}");
    let e =
        fails(d, &["sql", "--set", &base_set, "-c", "COPY (SELECT 1 AS a) TO 'elsewhere.parquet'"]);
    assert!(e.contains("outside vista.base_dir"), "{e}");
    let inside = format!("SELECT a FROM '{}'", base.join("in.parquet").display());
    ok(d, &["sql", "--set", &base_set, "-c", &inside]);

    let e = fails(d, &["sql", "-c", "SELECT read_bytes('/dev/zero')"]);
    assert!(e.contains("not a regular file"), "{e}");
    let e =
        fails(d, &["sql", "--set", "max_file_bytes=10", "-c", "SELECT read_bytes('secret.png')"]);
    assert!(e.contains("more than vista.max_file_bytes = 10"), "{e}");
}

/// Inputs that would otherwise give a silently wrong number or a misleading output.
#[test]
fn silent_wrongs_are_errors() {
    let dir = tmp();
    let d = dir.path();
    let e = fails(
        d,
        &["sql", "-c", "SELECT cider_d(p, r) FROM (VALUES ('a dog', ['a dog', NULL])) AS t(p, r)"],
    );
    assert!(e.contains("reference 2 is NULL"), "{e}");
    let e = fails(d, &["sql", "-c", "SELECT vqa_accuracy('yes', ['yes', NULL, 'no'])"]);
    assert!(e.contains("answer 2 of the human answers is NULL"), "{e}");
    let e = fails(d, &["sql", "-c", "SELECT 1 AS a", "--out", "out.xlsx"]);
    assert!(e.contains("cannot tell the format"), "{e}");
    std::fs::create_dir_all(d.join("adir")).unwrap();
    let e = fails(d, &["sql", "-c", "SELECT 1 AS a", "--out", "adir"]);
    assert!(e.contains("is a directory"), "{e}");
    assert_eq!(std::fs::read_dir(d.join("adir")).unwrap().count(), 0);
    assert!(!std::fs::read_dir(d).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    let e = fails(
        d,
        &[
            "generate",
            "--model",
            &model_dir(),
            "--image",
            "x.png",
            "--prompt",
            "hi",
            "--num-beams",
            "0",
        ],
    );
    assert!(e.contains("num_beams"), "{e}");

    // A missing image read under on_error => 'null' is a row the job counts as failed.
    let r = ok(
        d,
        &[
            "sql",
            "--format",
            "csv",
            "-c",
            "SELECT vista_generate(read_bytes('missing.png', on_error => 'null'), 'Describe <image>.', \
                    output => 'detail')['error'] AS e",
        ],
    );
    assert_eq!(r.stdout, "e\nthe image is NULL (no model call)\n");

    // A truncated JPEG is an error, not a grey-filled picture.
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 9]));
    let mut jpg = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
        .unwrap();
    std::fs::write(d.join("cut.jpg"), &jpg[..jpg.len() - 40]).unwrap();
    let e = fails(d, &["sql", "-c", "SELECT image_phash(read_bytes('cut.jpg'))"]);
    assert!(e.contains("truncated JPEG"), "{e}");
}

/// A flat expression of thousands of terms plans and runs (it nests once per term).
#[test]
fn a_long_flat_expression_runs() {
    let dir = tmp();
    let sql = format!("SELECT {}1 AS x", "1 + ".repeat(5000));
    let r = ok(dir.path(), &["sql", "--format", "csv", "-c", &sql]);
    assert_eq!(r.stdout, "x\n5001\n");
}

fn write_samples(d: &Path, n: usize) -> String {
    let values: Vec<String> = (0..n).map(|i| format!("('s{i:03}', 'caption {i}')")).collect();
    let sql = format!(
        "COPY (SELECT * FROM (VALUES {}) AS t(sample_id, text)) TO 'samples.parquet'",
        values.join(", ")
    );
    ok(d, &["sql", "-c", &sql]);
    std::fs::write(
        d.join("job.sql"),
        "CREATE VIEW predictions AS SELECT sample_id, upper(text) AS pred, CAST(NULL AS VARCHAR) AS error FROM samples;\n\
         CREATE VIEW scores AS SELECT count(*) AS n FROM predictions;\n",
    )
    .unwrap();
    "samples.parquet".to_string()
}

fn chunk_files(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn prediction_count(d: &Path) -> String {
    let r = ok(
        d,
        &[
            "sql",
            "--format",
            "csv",
            "-c",
            "SELECT count(*) AS n, count(DISTINCT sample_id) AS ids FROM 'out/predictions.parquet'",
        ],
    );
    r.stdout
}

/// A chunk lost from the middle is recomputed under a new name: no committed chunk is
/// overwritten, and the merged result holds every sample once.
#[test]
fn resume_after_a_lost_chunk_keeps_every_row() {
    let dir = tmp();
    let d = dir.path();
    let samples = write_samples(d, 10);
    let run = ["run", "job.sql", "--samples", &samples, "--out", "out", "--chunk-rows", "3"];
    ok(d, &run);
    assert_eq!(
        chunk_files(&d.join("out")),
        [
            "chunk-000000.parquet",
            "chunk-000001.parquet",
            "chunk-000002.parquet",
            "chunk-000003.parquet"
        ]
    );
    std::fs::remove_file(d.join("out/chunks/chunk-000001.parquet")).unwrap();
    let mut resume = run.to_vec();
    resume.push("--resume");
    let r = ok(d, &resume);
    assert!(r.stderr.contains("10 samples: 3 computed, 7 resumed, 0 failed"), "{}", r.stderr);
    assert_eq!(
        chunk_files(&d.join("out")),
        [
            "chunk-000000.parquet",
            "chunk-000002.parquet",
            "chunk-000003.parquet",
            "chunk-000004.parquet"
        ]
    );
    assert_eq!(prediction_count(d), "n,ids\n10,10\n");
    // Resuming again changes nothing.
    let r = ok(d, &resume);
    assert!(r.stderr.contains("0 computed, 10 resumed"), "{}", r.stderr);
    let leftovers: Vec<_> = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// An unreadable chunk stops the job naming the way out; that way out recomputes its rows.
#[test]
fn an_unreadable_chunk_can_be_dropped_and_recomputed() {
    let dir = tmp();
    let d = dir.path();
    let samples = write_samples(d, 7);
    let run = ["run", "job.sql", "--samples", &samples, "--out", "out", "--chunk-rows", "3"];
    ok(d, &run);
    std::fs::write(d.join("out/chunks/chunk-000001.parquet"), b"garbage").unwrap();
    let mut resume = run.to_vec();
    resume.push("--resume");
    let e = fails(d, &resume);
    assert!(e.contains("chunk-000001.parquet") && e.contains("--drop-unreadable"), "{e}");
    resume.push("--drop-unreadable");
    let r = ok(d, &resume);
    assert!(r.stderr.contains("7 samples: 3 computed, 4 resumed"), "{}", r.stderr);
    assert!(d.join("out/dropped/chunk-000001.parquet").exists());
    assert_eq!(prediction_count(d), "n,ids\n7,7\n");
}

/// Two jobs never share an output directory: the second is refused while the first runs, and
/// a chunk another job wrote is refused at the merge.
#[test]
fn a_second_job_on_one_output_is_refused() {
    let dir = tmp();
    let d = dir.path();
    let samples = write_samples(d, 4);
    std::fs::create_dir_all(d.join("out")).unwrap();
    let held = vista::dir_lock::DirLock::acquire(&d.join("out")).unwrap();
    let e = fails(d, &["run", "job.sql", "--samples", &samples, "--out", "out"]);
    assert!(
        e.contains(&format!("is in use by another vista job (process {})", std::process::id())),
        "{e}"
    );
    drop(held);
    ok(d, &["run", "job.sql", "--samples", &samples, "--out", "out", "--chunk-rows", "2"]);

    // A different job's chunk copied in under a fresh name.
    std::fs::write(
        d.join("job2.sql"),
        "CREATE VIEW predictions AS SELECT sample_id, lower(text) AS pred, CAST(NULL AS VARCHAR) AS error FROM samples;\n",
    )
    .unwrap();
    ok(d, &["run", "job2.sql", "--samples", &samples, "--out", "out2", "--chunk-rows", "2"]);
    std::fs::copy(
        d.join("out2/chunks/chunk-000000.parquet"),
        d.join("out/chunks/chunk-000009.parquet"),
    )
    .unwrap();
    let e = fails(
        d,
        &["run", "job.sql", "--samples", &samples, "--out", "out", "--chunk-rows", "2", "--resume"],
    );
    assert!(e.contains("chunk-000009.parquet") && e.contains("belongs to a different job"), "{e}");
}

/// A job that fails before committing anything leaves no skeleton directory; a job file
/// cannot widen the base directory it was started with.
#[test]
fn failed_jobs_leave_nothing_and_cannot_widen_the_base_directory() {
    let dir = tmp();
    let d = dir.path();
    let samples = write_samples(d, 2);
    std::fs::write(
        d.join("bad.sql"),
        "CREATE VIEW predictions AS SELECT sample_id, nope FROM samples;\n",
    )
    .unwrap();
    fails(d, &["run", "bad.sql", "--samples", &samples, "--out", "never"]);
    assert!(!d.join("never").exists());
    std::fs::create_dir_all(d.join("imgs")).unwrap();
    std::fs::write(
        d.join("widen.sql"),
        "SET vista.base_dir = '/';\nCREATE VIEW predictions AS SELECT sample_id FROM samples;\n",
    )
    .unwrap();
    let e =
        fails(d, &["run", "widen.sql", "--samples", &samples, "--out", "w", "--base-dir", "imgs"]);
    assert!(e.contains("leaves the base directory 'imgs'"), "{e}");
}
