//! Vista: VistaLLM as SQL. The engine (session, tables, output, CLI plumbing) and the model;
//! the SQL functions live in the `vista-udfs` crate.

pub mod async_calls;
pub mod chart;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod confine;
pub mod curate;
pub mod demo;
pub mod dir_lock;
pub mod engine;
pub mod file_options;
pub mod functions;
pub mod global_aggregate_filter;
pub mod import;
pub mod jobs;
pub mod meta;
pub mod model;
pub mod object_stores;
pub mod output;
pub mod parquet_kv_metadata;
pub mod progress;
pub mod provenance;
pub mod script;
pub mod session;
pub mod synth;
pub mod tables;
pub mod train;
