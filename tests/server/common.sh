# Sourced by the server's end-to-end tests (run.sh, sign.sh): the binary from
# $1, the stories260K fixture (skip, exit 77, without it or curl), a private
# work folder removed at exit with the server killed, fail(), and
# make_tenants.
tracemark=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fixtures=${TRACEMARK_FIXTURES:-$root/../shared}
model=$fixtures/models/stories260K.bin
tokenizer=$fixtures/models/tok512.bin
[ -f "$model" ] || { echo "SKIP: no $model"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$work/serve.log" ] && tail -20 "$work/serve.log"; exit 1; }

# Two tenants, acme and beta, each with its own watermark key and API key
# (both KGW LeftHash), written to $work/tenants.yaml; the files hold secrets,
# so they are made under umask 077.
scheme=$root/configs/schemes/kgw-lefthash.yaml
acme_api=sk-acme-0123456789abcdef
beta_api=sk-beta-fedcba9876543210
make_tenants() {
  umask 077
  # Fixed keys (docs/watermark-spec.md's example ids), so that every run detects
  # and refuses the same texts; keygen itself is tested in test_cli and test_keys.
  printf 'tracemark-watermark-key v1\nid: c7b321360caa6659\nkey: %s\n' "$(printf 'f%.0s' {1..64})" > "$work/acme.key"
  printf 'tracemark-watermark-key v1\nid: fda1a304fcd9862d\nkey: %s\n' 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f > "$work/beta.key"
  cat > "$work/tenants.yaml" <<YAML
tenants:
  - name: acme
    api_key: $acme_api
    watermark: $scheme
    key: acme.key
  - name: beta
    api_key: $beta_api
    watermark: $scheme
    key: beta.key
YAML
}
