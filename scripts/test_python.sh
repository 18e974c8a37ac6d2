#!/usr/bin/env bash
# The Python package's tests: builds the `vista` wheel with maturin (dev profile, in the same
# CARGO_TARGET_DIR as `cargo test`, so only the package's own crate compiles again), installs it
# into a fresh virtual environment next to DataFusion's Python package, pyarrow, pandas and
# pytest, and runs python/tests.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet "maturin>=1.9,<2" "datafusion>=55,<56" "pyarrow>=14" pandas pytest
"$work/venv/bin/maturin" build --quiet --profile dev -m python/Cargo.toml --out "$work/wheels"
"$py" -m pip install --quiet --no-deps "$work"/wheels/vista-*.whl
"$py" -m pytest -q python/tests
