//! The one place that builds a `SessionContext`: configuration, every vista function, the
//! model loader, and file paths usable as tables.

use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::optimizer::Optimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::async_calls::AsyncCallsInProjection;
use crate::global_aggregate_filter::GlobalAggregateFilter;
use vista_udfs::generate::ModelLoader;
use vista_udfs::VistaConfig;

/// How to build a session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// `vista.*` or `datafusion.*` settings applied before any statement (`--set k=v`).
    pub settings: Vec<(String, String)>,
    /// Partitions per scan; `None` = DataFusion's default (the number of cores).
    pub target_partitions: Option<usize>,
    /// Bytes of memory operators may hold; sorts, aggregations and windows spill to the
    /// temporary directory beyond it (hash joins cannot spill and fail instead). `None`: no limit.
    pub memory_limit: Option<usize>,
}

/// A context with DataFusion's functions, every vista function, `information_schema` (for
/// `SHOW FUNCTIONS`), URL tables (`SELECT * FROM 'x.parquet'`) and object stores made on first
/// use for `s3://`, `gs://` and `http(s)://` locations (`object_stores`).
pub fn new_context(opts: &SessionOptions) -> Result<SessionContext> {
    let config = session_config(SessionConfig::new(), opts)?;
    let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(crate::object_stores::RemoteStores::default()));
    if let Some(bytes) = opts.memory_limit {
        // First come, first served: a sort that cannot grow spills and gives its memory
        // back. (A fair-share pool hands all of it to the sorts up front and leaves nothing
        // for the merges above them, which cannot spill.)
        let pool = datafusion::execution::memory_pool::GreedyMemoryPool::new(bytes);
        runtime = runtime.with_memory_pool(Arc::new(pool));
    }
    let state = state_builder(config).with_runtime_env(runtime.build_arc()?).build();
    let ctx = SessionContext::new_with_state(state).enable_url_table();
    register_functions(&ctx)?;
    Ok(ctx)
}

/// DataFusion's default session state for `config`, with the optimizer rules vista adds
/// (a filter over global aggregates is not lost, `global_aggregate_filter`; a model call in a
/// `GROUP BY`, `ORDER BY` or window runs in a projection below it, `async_calls`). The cluster
/// client builds its state with this too.
pub fn state_builder(config: SessionConfig) -> SessionStateBuilder {
    let mut rules = Optimizer::new().rules;
    let at = rules.iter().position(|r| r.name() == "push_down_filter").unwrap_or(0);
    rules.insert(at, Arc::new(GlobalAggregateFilter));
    rules.push(Arc::new(AsyncCallsInProjection));
    SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_optimizer_rules(rules)
}

/// `base` with vista's settings: the `vista.*` extension, `information_schema`, the optimizer
/// choices vista's functions need, and `opts` (partitions, `--set` values). The cluster builds
/// its scheduler, executor and client configurations with this too.
pub fn session_config(base: SessionConfig, opts: &SessionOptions) -> Result<SessionConfig> {
    let mut config =
        base.with_information_schema(true).with_option_extension(VistaConfig::default());
    if let Some(n) = opts.target_partitions {
        config = config.with_target_partitions(n);
    }
    // DataFusion 55 copies an expression into every field access it pushes through a
    // projection: `g['text']`, `g['error']` of one `vista_generate(...) AS g` would plan one model
    // call each (the worker's dedupe makes the copies free, but the plan should say one call).
    config.options_mut().optimizer.enable_leaf_expression_pushdown = false;
    // DataFusion 55.2's partitioned hash join waits for every partition to report its build side
    // to the join's dynamic filter, but a partition with an empty build side never reports: the
    // query stops at 0% CPU. Eval jobs meet it whenever a join sees fewer groups than partitions
    // (the co-segmentation scores over two samples did). `SET ... = true` turns it back on.
    config.options_mut().optimizer.enable_join_dynamic_filter_pushdown = false;
    for (k, v) in &opts.settings {
        let key = if k.contains('.') { k.clone() } else { format!("vista.{k}") };
        config
            .options_mut()
            .set(&key, v)
            .with_context(|| format!("invalid setting {key} = '{v}'"))?;
    }
    Ok(config)
}

/// Registers every vista function (and `vista_generate` with this process's model loader) and
/// the `vista_functions` table on `ctx`.
pub fn register_functions(ctx: &SessionContext) -> Result<()> {
    vista_udfs::register_all(ctx)?;
    ctx.register_udf(vista_udfs::generate::vista_generate_udf(model_loader()));
    ctx.register_udtf(
        crate::parquet_kv_metadata::NAME,
        Arc::new(crate::parquet_kv_metadata::ParquetKvMetadata),
    );
    ctx.register_table("vista_functions", std::sync::Arc::new(crate::functions::table()?))?;
    Ok(())
}

/// The process's model loader: the candle VistaLLM, loaded lazily from `vista.model` and shared
/// by `vista_generate` and the job runner (which fingerprints the same loaded model).
pub fn model_loader() -> ModelLoader {
    static LOADER: OnceLock<ModelLoader> = OnceLock::new();
    LOADER.get_or_init(crate::model::loader).clone()
}
