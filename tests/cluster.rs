//! The same SQL on a Ballista cluster: a scheduler and two executors started as separate
//! `vista cluster ...` processes on free localhost ports; every query's result must equal the
//! in-process run's (`vista::session::new_context`) exactly. Then one executor is killed in the
//! middle of a long query (docs/cluster.md records what happens).

#![cfg(feature = "cluster")]

use std::fs::File;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{JsonReadOptions, ParquetReadOptions, SessionContext};
use vista::session::SessionOptions;

#[path = "common/s3.rs"]
mod s3;
use s3::S3Server;

/// The tests start clusters of their own; one at a time on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Two free ports in a row (an executor's Flight port and its gRPC port, Flight + 1).
fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// A child process, killed when dropped; its stdout and stderr go to `log`.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn spawn(dir: &Path, name: &str, args: &[String], env: &[(String, String)]) -> Node {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vista"))
            .args(args)
            .current_dir(dir)
            .env("VISTA_LOG", "info")
            .env("RAYON_NUM_THREADS", "1")
            .envs(env.iter().cloned())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("vista starts");
        Node { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cluster {
    url: String,
    scheduler: Node,
    executors: Vec<Node>,
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scheduler and `n` executors of `tasks` concurrent tasks each, registered and ready.
fn start_cluster(dir: &Path, n: usize, tasks: usize) -> Cluster {
    start_cluster_with(dir, n, tasks, &[])
}

/// [`start_cluster`] with extra environment variables for every process.
fn start_cluster_with(dir: &Path, n: usize, tasks: usize, env: &[(String, String)]) -> Cluster {
    let sp = free_port();
    let scheduler = Node::spawn(
        dir,
        "scheduler",
        &[
            "cluster".into(),
            "scheduler".into(),
            "--bind".into(),
            format!("127.0.0.1:{sp}"),
            "--executor-timeout".into(),
            "6".into(),
        ],
        env,
    );
    wait_until("the scheduler", 60, || TcpStream::connect(("127.0.0.1", sp)).is_ok());
    let executors: Vec<Node> = (0..n)
        .map(|i| {
            let p = free_port_pair();
            let node = Node::spawn(
                dir,
                &format!("executor{i}"),
                &[
                    "cluster".into(),
                    "executor".into(),
                    "--scheduler".into(),
                    format!("127.0.0.1:{sp}"),
                    "--bind".into(),
                    format!("127.0.0.1:{p}"),
                    "--concurrent-tasks".into(),
                    tasks.to_string(),
                    "--heartbeat-interval".into(),
                    "1".into(),
                    "--root".into(),
                    root().to_string_lossy().into_owned(),
                ],
                env,
            );
            // Ports are picked before binding: wait for this one before picking the next.
            wait_until("an executor", 60, || {
                node.log_text().contains("Executor registration succeed")
            });
            node
        })
        .collect();
    Cluster { url: format!("df://127.0.0.1:{sp}"), scheduler, executors }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn table(ctx: &SessionContext, sql: &str) -> String {
    let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches = df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&batches).unwrap().to_string()
}

/// `files` Parquet files of `rows` polygons each under `dir` (written in-process): quads of up
/// to 640x480 pixels whose corners vary with the row number `i`.
async fn write_polygons(dir: &Path, files: usize, rows: usize) {
    let ctx = vista::session::new_context(&SessionOptions::default()).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..files {
        let sql = format!(
            "COPY (SELECT value AS i, \
                   [20.0 + value % 50, 20.0, 20.0, 400.0, 600.0, 420.0 - value % 30, 610.0, 30.0] \
                   AS poly FROM generate_series({}, {}) ) TO '{}' STORED AS PARQUET",
            k * rows,
            (k + 1) * rows - 1,
            dir.join(format!("part-{k}.parquet")).display()
        );
        ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    }
}

/// Parquet tables of several files each (so several partitions, and scans on both executors),
/// written by the in-process engine from generated rows and the committed fixtures.
async fn make_tables(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let ctx = vista::session::new_context(&SessionOptions::default()).unwrap();
    let mut out = Vec::new();

    // Generated polygons, 20,000 rows in 4 files.
    let polys = dir.join("polys");
    std::fs::create_dir_all(&polys).unwrap();
    for k in 0..4 {
        let sql = format!(
            "COPY (SELECT value AS i, \
                   [1.0, 1.0, 1.0, 4.0, 3.0 + (value % 3), 4.0, 3.0, 1.0 + (value % 2)] AS poly \
                   FROM generate_series(0, 19999) WHERE value % 4 = {k}) \
             TO '{}' STORED AS PARQUET",
            polys.join(format!("part-{k}.parquet")).display()
        );
        ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    }
    out.push(("polys", polys));

    // JSON fixtures -> NDJSON -> Parquet files split by row number.
    let fixture = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(root().join(p)).unwrap()).unwrap()
    };
    let masks: Vec<serde_json::Value> = fixture("tests/fixtures/contour/masks.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            serde_json::json!({"name": m["name"], "mask": {"size": m["size"], "counts": m["counts"]}})
        })
        .collect();
    let mut caps = Vec::new();
    for set in fixture("tests/fixtures/metrics/captions.json").as_array().unwrap() {
        for img in set["images"].as_array().unwrap() {
            caps.push(serde_json::json!({
                "set": set["name"], "id": img["id"], "hyp": img["hyp"], "refs": img["refs"]
            }));
        }
    }
    let res: Vec<serde_json::Value> = fixture("tests/fixtures/metrics/masks.json")["res"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| serde_json::json!({"i": i, "pred": r["pred"], "gt": r["gt"]}))
        .collect();
    let mut images: Vec<serde_json::Value> =
        std::fs::read_dir(root().join("tests/fixtures/coco/images"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .map(|name| serde_json::json!({"path": format!("coco/images/{name}")}))
            .collect();
    images.sort_by_key(|v| v["path"].as_str().unwrap().to_string());
    let model_images: Vec<serde_json::Value> =
        ["grey_23x50.png", "rgb_40x30.png", "rgba_33x33.png"]
            .iter()
            .map(|p| serde_json::json!({"path": format!("model/images/{p}")}))
            .collect();

    for (name, rows, files) in [
        ("masks", masks, 2),
        ("caps", caps, 3),
        ("res", res, 3),
        ("images", images, 2),
        ("model_images", model_images, 2),
    ] {
        let json = dir.join(format!("{name}.json"));
        let mut f = File::create(&json).unwrap();
        for r in &rows {
            writeln!(f, "{r}").unwrap();
        }
        drop(f);
        ctx.register_json(name, json.to_str().unwrap(), JsonReadOptions::default()).await.unwrap();
        let tdir = dir.join(name);
        std::fs::create_dir_all(&tdir).unwrap();
        for k in 0..files {
            let sql = format!(
                "COPY (SELECT * FROM (SELECT *, row_number() OVER () AS rn FROM {name}) \
                       WHERE rn % {files} = {k}) \
                 TO '{}' STORED AS PARQUET",
                tdir.join(format!("part-{k}.parquet")).display()
            );
            ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        }
        out.push((name, tdir));
    }
    out
}

async fn register(ctx: &SessionContext, tables: &[(&str, PathBuf)]) {
    for (name, path) in tables {
        ctx.register_parquet(*name, path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
    }
}

/// Queries with vista functions: scalar mask functions over many rows, contour sequences and
/// text, settings read by functions on the executors, aggregates merged across partitions, and
/// the model.
const QUERIES: &[&str] = &[
    "SELECT count(*) AS n, sum(a) AS area, min(a) AS lo, max(a) AS hi FROM \
       (SELECT mask_area(polygon_to_mask(poly, 5, 4, space => 'pixel')) AS a FROM polys)",
    "SELECT i, mask_area(polygon_to_mask(poly, 5, 4, space => 'pixel')) AS a, \
            mask_bbox(polygon_to_mask(poly, 5, 4, space => 'pixel')) AS b \
     FROM polys WHERE i % 97 = 0 ORDER BY i",
    "SELECT name, format_points(mask_to_sequence(mask, n => 16), style => 'decimal') AS text, \
            mask_to_sequence(mask, 32, 'adaptive', 'pixel') AS seq \
     FROM masks ORDER BY name",
    "SELECT path, image_width(read_bytes(path)) AS w, image_height(read_bytes(path)) AS h \
     FROM images ORDER BY path",
    "SELECT set, count(*) AS n, cider_d(hyp, refs)['score'] AS cider, bleu(hyp, refs) AS bleu, \
            rouge_l(hyp, refs) AS rouge FROM caps GROUP BY set ORDER BY set",
    "SELECT cider_d(hyp, refs)['score'] AS cider, count(*) AS n FROM caps",
    "SELECT miou(pred, gt) AS miou, ciou(pred, gt) AS ciou, count(*) AS n FROM res",
    "SELECT path, g['text'] AS text FROM \
       (SELECT path, vista_generate(read_bytes(path), 'Describe the image. <image>', \
                                    output => 'detail') AS g FROM model_images) ORDER BY path",
];

/// Equal tables, except that a float may differ from the in-process one in its last bits
/// (relative 1e-12): aggregates merge partial states in the order partitions finish, and
/// floating-point sums depend on that order (as they do in-process with another partition
/// count). Integers, strings and every scalar function's value must be identical.
fn assert_same(got: &str, want: &str, q: &str) {
    if got == want {
        return;
    }
    let tokens = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || "|{},[]".contains(c))
            .filter(|t| !t.is_empty() && !t.chars().all(|c| c == '-' || c == '+'))
            .map(str::to_string)
            .collect()
    };
    let (g, w) = (tokens(got), tokens(want));
    assert_eq!(g.len(), w.len(), "cluster result differs for {q}:\n{got}\n{want}");
    for (a, b) in g.iter().zip(&w) {
        if a == b {
            continue;
        }
        let close = match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => a.contains('.') && (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => false,
        };
        assert!(close, "cluster result differs for {q}: {a} vs {b}\n{got}\n{want}");
    }
}

fn settings() -> SessionOptions {
    let s = [
        // Every image path is relative to it: read_bytes stays inside the base directory.
        ("vista.base_dir", root().join("tests/fixtures").display().to_string()),
        (
            "vista.model",
            root().join("tests/fixtures/model/tiny_xattn1_mha_coords").display().to_string(),
        ),
        ("vista.max_new_tokens", "6".to_string()),
    ];
    SessionOptions {
        settings: s.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        target_partitions: Some(4),
        memory_limit: None,
    }
}

#[test]
fn vista_sql_on_a_cluster_equals_the_in_process_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let tables = rt.block_on(make_tables(dir.path()));
    let cluster = start_cluster(dir.path(), 2, 2);
    rt.block_on(async {
        let local = vista::session::new_context(&settings()).unwrap();
        register(&local, &tables).await;
        let remote = vista::cluster::remote_context(&cluster.url, &settings()).await.unwrap();
        register(&remote, &tables).await;
        for q in QUERIES {
            let want = table(&local, q).await;
            let got = table(&remote, q).await;
            assert_same(&got, &want, q);
        }
    });
    // Both executors ran tasks.
    for (i, e) in cluster.executors.iter().enumerate() {
        let log = e.log_text();
        assert!(log.contains("Execute task"), "executor {i} ran no task:\n{log}");
    }
}

/// A COPY of every polygon's `n`-point contour sequence, as decimal text, into `out`.
fn sequences_to_file(input: &Path, out: &Path, n: usize) -> String {
    format!(
        "COPY (SELECT i, format_points(mask_to_sequence(polygon_to_mask(poly, 640, 480, \
           space => 'pixel'), n => {n}), style => 'decimal') AS t FROM '{}/') TO '{}'",
        input.display(),
        out.display()
    )
}

/// `vista sql --cluster` end to end: vista's own atomic `COPY ... TO file` on the client.
#[test]
fn the_cli_runs_sql_on_a_cluster() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cluster = start_cluster(dir.path(), 1, 2);
    let input = dir.path().join("quads");
    runtime().block_on(write_polygons(&input, 2, 10));
    let out = dir.path().join("seq.parquet");
    let sql = sequences_to_file(&input, &out, 8);
    let run = Command::new(env!("CARGO_BIN_EXE_vista"))
        .args(["sql", "--cluster", &cluster.url, "-c", &sql])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("20 rows written"));
    assert!(out.exists());
}

/// A table in a bucket: the client plans it, the scheduler lists it, the executors read it, all
/// through the stores made from the same AWS variables; the result equals the in-process run's.
#[test]
fn a_cluster_reads_tables_from_s3() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(s3) = S3Server::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("quads");
    runtime().block_on(write_polygons(&input, 2, 10));
    s3.put("/vista", b"");
    let mut names: Vec<_> = std::fs::read_dir(&input).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for f in &names {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        s3.put(&format!("/vista/quads/{name}"), &std::fs::read(f).unwrap());
    }
    let cluster = start_cluster_with(dir.path(), 1, 2, &s3.env());
    let q = "SELECT count(*) AS n, sum(mask_area(polygon_to_mask(poly, 640, 640, space => 'pixel'))) AS area FROM q";
    let local = input.to_string_lossy().into_owned();
    let want =
        s3.ok(dir.path(), &["sql", "--format", "csv", "--table", &format!("q={local}"), "-c", q]);
    let table = "q=s3://vista/quads/";
    let got = s3.ok(
        dir.path(),
        &["sql", "--cluster", &cluster.url, "--format", "csv", "--table", table, "-c", q],
    );
    assert_eq!(got, want);
    assert!(want.starts_with("n,area\n20,"), "{want}");
}

/// A long query loses one of its two executors after tasks started on both.
#[test]
fn losing_an_executor_mid_query() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(dir.path(), 2, 1);
    let input = dir.path().join("quads");
    runtime().block_on(write_polygons(&input, 8, 1000));
    let out = dir.path().join("long.parquet");
    let sql = sequences_to_file(&input, &out, 32);
    let mut client = Command::new(env!("CARGO_BIN_EXE_vista"))
        .args(["sql", "--cluster", &cluster.url, "-c", &sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("tasks on both executors", 120, || {
        cluster.executors.iter().all(|e| e.log_text().contains("Execute task"))
    });
    let killed_at = Instant::now();
    cluster.executors[1].kill();
    let status = client.wait().unwrap();
    let took = killed_at.elapsed();
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    client.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    client.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    eprintln!(
        "after the kill: exit {status}, {:.1} s\nstdout: {stdout}\nstderr: {stderr}",
        took.as_secs_f64()
    );
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("long"))
        .collect();
    eprintln!("files: {leftovers:?}");
    let slog = cluster.scheduler.log_text();
    for l in slog.lines().filter(|l| {
        let l = l.to_ascii_lowercase();
        ["lost", "remov", "dead", "fail", "resubmit", "retry", "rerun", "reset"]
            .iter()
            .any(|w| l.contains(w))
    }) {
        eprintln!("scheduler: {}", l.chars().take(300).collect::<String>());
    }
    // Observed (docs/cluster.md): the scheduler declares the executor lost when its heartbeat
    // times out (--executor-timeout 6 here), resets the task that was running there, reruns it
    // on the surviving executor, and the query completes; the client's COPY writes the whole
    // result, once, atomically.
    assert!(status.success(), "the query should survive losing an executor: {stderr}");
    assert!(stdout.contains("8000 rows written"), "{stdout}");
    assert!(slog.contains("heartbeat timed out"), "{slog}");
    assert!(slog.contains("on lost Executor"), "{slog}");
    assert_eq!(leftovers, vec!["long.parquet".to_string()], "a temporary file was left");
    runtime().block_on(async {
        let ctx = vista::session::new_context(&SessionOptions::default()).unwrap();
        let got = table(
            &ctx,
            &format!("SELECT count(*) AS n, count(DISTINCT i) AS d FROM '{}'", out.display()),
        )
        .await;
        assert!(got.contains("| 8000 | 8000 |"), "{got}");
        let q = |from: String| {
            format!(
                "SELECT i, format_points(mask_to_sequence(polygon_to_mask(poly, 640, 480, \
                 space => 'pixel'), n => 32), style => 'decimal') AS t FROM {from} \
                 WHERE i % 50 = 7 ORDER BY i"
            )
        };
        let want = table(&ctx, &q(format!("'{}/'", input.display()))).await;
        let got = table(
            &ctx,
            &format!("SELECT i, t FROM '{}' WHERE i % 50 = 7 ORDER BY i", out.display()),
        )
        .await;
        assert_eq!(got, want);
    });

    // Losing the last executor: the job fails with one clear line once the grace period for
    // executors to come back (--executor-timeout) has passed, and no output file appears.
    let out2 = dir.path().join("never.parquet");
    let sql2 = sql.replace(out.to_str().unwrap(), out2.to_str().unwrap());
    let before = cluster.executors[0].log_text().matches("Execute task").count();
    let client = Command::new(env!("CARGO_BIN_EXE_vista"))
        .args(["sql", "--cluster", &cluster.url, "-c", &sql2])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a task of the second query", 120, || {
        cluster.executors[0].log_text().matches("Execute task").count() > before
    });
    cluster.executors[0].kill();
    let run = client.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    eprintln!("without executors: exit {}, stderr: {err}", run.status);
    assert!(!run.status.success());
    assert!(err.contains("all executors were lost"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error expected: {err}");
    assert!(!out2.exists());
    let tmp: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("never"))
        .collect();
    assert!(tmp.is_empty(), "left behind: {tmp:?}");
}
