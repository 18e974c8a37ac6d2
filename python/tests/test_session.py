"""vista.register into DataFusion's Python SessionContext, and vista.Session: Arrow in and
out, the model, errors, the GIL and Ctrl-C."""

import os
import signal
import threading
import time

import pandas as pd
import pyarrow as pa
import pytest

import vista
from conftest import FIXTURES, load

TINY_MODEL = FIXTURES / "model" / "tiny_xattn1_mha_coords"
IMAGES = FIXTURES / "model" / "images"


def test_every_function_registers_into_a_datafusion_context():
    datafusion = pytest.importorskip("datafusion")
    ctx = datafusion.SessionContext()
    vista.register(ctx)
    s = load("metrics/captions.json")[1]
    df = pd.DataFrame(
        {
            "id": [im["id"] for im in s["images"]],
            "pred": [im["hyp"] for im in s["images"]],
            "refs": [im["refs"] for im in s["images"]],
            "pred_tok": [im["hyp_tok"] for im in s["images"]],
            "refs_tok": [im["refs_tok"] for im in s["images"]],
        }
    )
    ctx.from_pandas(df, "caps")
    got = ctx.sql(
        "SELECT cider_d(pred, refs)['score'] AS c, count(*) AS n, "
        "cider_d(pred_tok, refs_tok, id, false) AS t FROM caps"
    ).to_pylist()[0]
    assert got["c"] == pytest.approx(s["cider_d"], abs=1e-9)
    assert got["n"] == len(s["images"])
    assert got["t"]["score"] == pytest.approx(s["cider_d"], abs=1e-9)
    per_item = {p["id"]: p["score"] for p in got["t"]["per_item"]}
    assert per_item == {im["id"]: pytest.approx(im["cider_d"], abs=1e-9) for im in s["images"]}
    # Scalars, named arguments and nested results cross the FFI boundary too.
    # datafusion-ffi carries no parameter names: options are positional in a foreign context.
    row = ctx.sql(
        "SELECT vqa_accuracy('Yes', make_array('yes', 'yes', 'yes', 'yes'), 'pre2021') AS v, "
        "format_boxes([0.1, 0.2, 0.3, 0.4]) AS t, "
        "parse_boxes('<b_st><bin_100> <bin_200> <bin_300> <bin_400><b_ed>')['status'] AS s"
    ).to_pylist()[0]
    assert row == {
        "v": 1.0,
        "t": "<b_st><bin_100> <bin_200> <bin_300> <bin_400><b_ed>",
        "s": "ok",
    }
    # A row error under `on_error` 'report' (its result type is planned from the literal).
    report = ctx.sql(
        "SELECT mask_area(X'89504E470D0A1A0A00', 'report') AS r"
    ).to_pylist()[0]["r"]
    assert report == {
        "value": None,
        "error": "not a readable PNG mask (9 bytes): not a readable image (9 bytes): "
        "unexpected end of file",
    }
    # Every documented scalar and aggregate function is in the context.
    documented = {f["name"] for f in vista.functions() if f["kind"] in ("scalar", "aggregate")}
    registered = {f.name for f in vista._vista.scalar_functions()}
    registered |= {f.name for f in vista._vista.aggregate_functions()}
    assert registered == documented
    kinds = {f["name"]: f["kind"] for f in vista.functions()}
    for name in sorted(documented):
        get = ctx.udf if kinds[name] == "scalar" else ctx.udaf
        assert get(name).name == name


def test_pandas_round_trip_through_vista_session():
    df = pd.DataFrame({"id": [1, 2, 3], "caption": ["a dog", "two cats", None]})
    s = vista.Session()
    s.register("caps", df)
    out = s.sql("SELECT id, upper(caption) AS c, ptb_tokenize(caption) AS t FROM caps ORDER BY id")
    assert isinstance(out, pa.Table)
    back = out.to_pandas()
    assert back["id"].tolist() == [1, 2, 3]
    assert back["c"].tolist()[:2] == ["A DOG", "TWO CATS"]
    assert back["t"].tolist()[:2] == ["a dog", "two cats"]
    assert s.tables() == ["caps", "vista_functions"]
    # Anything exporting an Arrow stream registers (here a RecordBatchReader), replacing the
    # table of that name.
    batch = pa.record_batch({"id": [7, 8]})
    s.register("caps", pa.RecordBatchReader.from_batches(batch.schema, [batch]))
    assert s.sql("SELECT sum(id) AS s FROM caps").to_pylist() == [{"s": 15}]
    assert s.sql("SET vista.max_new_tokens = 3") is None


def test_files_register_by_path(tmp_path):
    path = tmp_path / "t.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    s = vista.Session()
    s.register("t", path)
    assert s.sql("SELECT sum(x) AS s FROM t").to_pylist() == [{"s": 6}]
    # vista's COPY writes the file atomically, with provenance metadata.
    out = tmp_path / "out.parquet"
    assert s.sql(f"COPY (SELECT x * 2 AS y FROM t) TO '{out}'") is None
    assert pq.read_table(out).column("y").to_pylist() == [2, 4, 6]


def test_vista_generate_runs_the_tiny_checkpoint():
    # The vicuna_batch case of the checkpoint's fixture: tests/model.rs checks that vista's
    # texts for it are its decoding of the token ids transformers generated.
    rows = load("model/tiny_xattn1_mha_coords/expected/expected.json")["cases"]["vicuna_batch"]
    s = vista.Session({"model": TINY_MODEL, "max_new_tokens": 10})
    s.register(
        "prompts",
        [
            {"i": i, "path": str(IMAGES / r["images"][0]), "instruction": r["instruction"]}
            for i, r in enumerate(rows["rows"])
        ],
    )
    got = s.sql(
        "SELECT vista_generate(read_bytes(path), instruction) AS text FROM prompts ORDER BY i"
    ).column("text").to_pylist()
    assert got == [
        "<bin_607><bin_253>W<bin_534><bin_574><bin_688><bin_536><bin_501><bin_721><bin_885>",
        "<bin_863><bin_22><bin_313><bin_534><bin_574><bin_39><bin_660><bin_501><bin_741>\ufffd",
        "<bin_863><bin_583>wer<bin_877>ere<bin_536><bin_501><bin_690><bin_742><bin_581>",
    ]


def test_errors_are_one_line_exceptions_naming_the_row():
    s = vista.Session()
    s.register("m", {"mask": [b"\x89PNG\r\n\x1a\n-broken", None]})
    with pytest.raises(vista.VistaError) as e:
        s.sql("SELECT mask_area(mask) FROM m")
    message = str(e.value)
    assert "\n" not in message
    assert "row 1" in message, message
    nulls = s.sql("SELECT mask_area(mask, on_error => 'null') AS a FROM m").column("a")
    assert nulls.to_pylist() == [None, None]
    with pytest.raises(vista.VistaError, match="SQL syntax error"):
        s.sql("SELEC 1")
    with pytest.raises(TypeError, match="expected a list"):
        vista.metrics.vqa_accuracy("yes", [["yes"]])


def test_the_gil_is_released_while_a_query_runs():
    s = vista.Session()
    done = threading.Event()

    def query():
        s.sql("SELECT count(*) FROM generate_series(1, 300000000)")
        done.set()

    t = threading.Thread(target=query)
    t.start()
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0)
    t.join()
    assert ticks > 1000


def test_ctrl_c_cancels_a_running_query():
    # A process started in the background by a shell without job control inherits SIGINT as
    # ignored, and Python then installs no KeyboardInterrupt handler; the test sets Python's own.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    s = vista.Session()
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            s.sql("SELECT count(*) FROM generate_series(1, 1000000000000)")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 10
    # The session is still usable.
    assert s.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]


def test_a_job_runs_and_resumes(tmp_path):
    import pyarrow.parquet as pq

    samples = tmp_path / "samples.parquet"
    pq.write_table(
        pa.table(
            {
                "sample_id": [f"s{i:03}" for i in range(10)],
                "text": [f"caption {i}" for i in range(10)],
            }
        ),
        samples,
    )
    job = tmp_path / "job.sql"
    job.write_text(
        "CREATE VIEW predictions AS SELECT sample_id, upper(text) AS pred, "
        "CAST(NULL AS VARCHAR) AS error FROM samples;\n"
        "CREATE VIEW scores AS SELECT count(*) AS n FROM predictions;\n"
    )
    s = vista.Session()
    first = s.run(job, samples, tmp_path / "out", chunk_rows=3)
    assert (first["total"], first["computed"], first["resumed"], first["failed"]) == (10, 10, 0, 0)
    again = s.run(job, samples, tmp_path / "out", chunk_rows=3)
    assert (again["total"], again["computed"], again["resumed"]) == (10, 0, 10)
    assert again["fingerprint"] == first["fingerprint"]
    preds = pq.read_table(first["predictions"]).to_pydict()
    got = dict(zip(preds["sample_id"], preds["pred"]))
    assert got == {f"s{i:03}": f"CAPTION {i}" for i in range(10)}
    assert pq.read_table(first["scores"]).column("n").to_pylist() == [10]
    with pytest.raises(vista.VistaError, match="already holds a job|resume"):
        s.run(job, samples, tmp_path / "out", resume=False)
