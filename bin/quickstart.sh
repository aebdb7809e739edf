#!/usr/bin/env bash
# The README's quick start: start `icc serve` on the bundled default model (a private unix socket), classify every
# image in assets/samples/ with `icc invoke`, print the connector's answer and the top class, then stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/icc-quickstart-XXXXXX")
sock="$work/icc.sock"
log="$work/serve.log"
icc() { node bin/run.js "$@"; }

# Started directly (not through the function) so that $! is the server itself and the trap can stop it.
node bin/run.js serve --socket "$sock" >"$log" 2>&1 &
server=$!
cleanup() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "Starting icc serve on the bundled default model (the first run generates and converts it)..."
for _ in $(seq 1 600); do
  if grep -q 'ready on' "$log"; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "icc serve exited before it was ready:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.2
done
if ! grep -q 'ready on' "$log"; then
  echo "icc serve was not ready after 120 s:" >&2
  cat "$log" >&2
  exit 1
fi
grep 'ready on' "$log"

for image in assets/samples/*; do
  echo
  echo "\$ icc invoke --socket $sock $image"
  icc invoke --socket "$sock" "$image"
  top=$(icc invoke --socket "$sock" --top-k 1 --json "$image" |
    node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{const t=JSON.parse(s).top[0];console.log(`${t.label ?? t.index} (${(t.probability*100).toFixed(1)}%)`)})')
  echo "top class: $top"
done
echo
echo "Done. Run 'node bin/run.js serve' (or 'icc serve' after 'npm link') to keep a server running, and 'node bin/run.js invoke IMAGE' to classify an image."
