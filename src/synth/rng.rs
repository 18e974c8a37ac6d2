//! The scenes' generator: the shared SplitMix64 of `vista_udfs::seeded`, so that a seed gives
//! the same scenes on every platform and with every version of every crate.

pub use vista_udfs::seeded::SplitMix64 as Rng;
