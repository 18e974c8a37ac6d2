//! Confinement of SQL to a directory: with `vista.base_dir` set, every file a statement reads as
//! a table (`FROM 'x.parquet'`, `CREATE EXTERNAL TABLE ... LOCATION`) or writes (`COPY ... TO`)
//! must lie inside it once `..` and symlinks are resolved. `read_bytes` applies the same rule to
//! each path it reads (vista-udfs' `image::read_bytes`). Tables registered on the command line
//! (`--table`, `--samples`) are the caller's own choice and are not checked.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::ListingTable;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::prelude::SessionContext;
use vista_udfs::VistaConfig;

/// The directory statements of `ctx` are confined to, if `vista.base_dir` is set.
pub fn base_dir(ctx: &SessionContext) -> Option<String> {
    let b = VistaConfig::from_options(ctx.state().config_options()).base_dir.clone();
    (!b.is_empty()).then_some(b)
}

/// Checks every file location a plan reads or writes against the session's base directory.
pub fn check_plan(ctx: &SessionContext, plan: &LogicalPlan) -> Result<()> {
    let Some(base) = base_dir(ctx) else { return Ok(()) };
    let mut locations = Vec::new();
    collect(plan, &mut locations);
    for loc in locations {
        check_location(&base, &loc)?;
    }
    Ok(())
}

/// Checks one file location (a path or a `file://` URL) against the base directory.
pub fn check_location(base: &str, location: &str) -> Result<()> {
    let path = match location.strip_prefix("file://") {
        Some(p) => PathBuf::from(p),
        None if location.contains("://") => {
            bail!("'{location}' is outside vista.base_dir '{base}' (not a local file)")
        }
        None => PathBuf::from(location),
    };
    let base_abs = Path::new(base)
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("vista.base_dir '{base}' cannot be resolved: {e}"))?;
    let resolved = resolve_existing_prefix(&path)?;
    if !resolved.starts_with(&base_abs) {
        bail!(
            "'{location}' resolves to '{}', outside vista.base_dir '{}'",
            resolved.display(),
            base_abs.display()
        );
    }
    Ok(())
}

/// The absolute path with `..` and symlinks resolved as far as it exists (an output file, or its
/// directories, may not exist yet; the rest is appended without `..`).
fn resolve_existing_prefix(path: &Path) -> Result<PathBuf> {
    let abs =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(p) = existing.canonicalize() {
            let mut out = p;
            for part in rest.iter().rev() {
                if *part == std::ffi::OsStr::new("..") {
                    bail!("'{}': `..` after a directory that does not exist", path.display());
                }
                out.push(part);
            }
            return Ok(out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => bail!("'{}' cannot be resolved", path.display()),
        }
    }
}

fn collect(plan: &LogicalPlan, out: &mut Vec<String>) {
    let _ = plan.apply(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                if let Ok(provider) = source_as_provider(&scan.source) {
                    listing_paths(provider.as_ref(), out);
                }
            }
            LogicalPlan::Copy(copy) => out.push(copy.output_url.clone()),
            LogicalPlan::Ddl(DdlStatement::CreateExternalTable(t)) => {
                out.extend(t.locations.iter().cloned())
            }
            _ => {}
        }
        let _ = node.apply_subqueries(|sub| {
            collect(sub, out);
            Ok(TreeNodeRecursion::Continue)
        });
        Ok(TreeNodeRecursion::Continue)
    });
}

fn listing_paths(provider: &dyn TableProvider, out: &mut Vec<String>) {
    let any: &dyn std::any::Any = provider;
    if let Some(listing) = any.downcast_ref::<ListingTable>() {
        out.extend(listing.table_paths().iter().map(|u| u.get_url().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_inside_pass_and_escapes_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("data");
        std::fs::create_dir_all(&base).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("etc")).unwrap();
        let b = base.to_string_lossy().to_string();
        let inside = base.join("new/out.parquet");
        assert!(check_location(&b, &inside.to_string_lossy()).is_ok(), "a file still to write");
        let url = format!("file://{}", base.join("x.parquet").display());
        assert!(check_location(&b, &url).is_ok());
        for bad in [
            base.join("../x.parquet").to_string_lossy().to_string(),
            base.join("etc/passwd").to_string_lossy().to_string(),
            "/etc/passwd".to_string(),
            "s3://bucket/x.parquet".to_string(),
        ] {
            let e = check_location(&b, &bad).unwrap_err().to_string();
            assert!(e.contains("outside vista.base_dir"), "{bad}: {e}");
        }
    }
}
