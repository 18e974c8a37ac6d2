# Sourced by the benchmark and GPU scripts.
# cargo_executable TARGET CARGO-ARGS...: runs `cargo CARGO-ARGS... --message-format=json` (a build
# or `test --no-run`) and prints the path of the executable it made for target TARGET.
cargo_executable() {
  local target=$1
  shift
  cargo "$@" --message-format=json 2>/dev/null | python3 -c '
import sys, json
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$target" | tail -1
}
