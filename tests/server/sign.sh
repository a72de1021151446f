#!/usr/bin/env bash
# End-to-end test of `tracemark serve --sign` and POST /v1/verify (ctest
# server_signing): a server with two tenants signs every reply; the text and
# manifest a client saves (curl, streamed or not, chat, and the official
# OpenAI npm client) verify with `tracemark verify --trust PUB`; the manifest
# records the generation facts `generate --sign` records for the same seed;
# /v1/verify gives the verdict `tracemark verify --json` gives, with the
# server's own key, --trust keys and the tenants' watermark keys.
# Usage: tests/server/sign.sh TRACEMARK_BINARY   (exit 77: skipped, said why)
set -euo pipefail
. "$(dirname "$0")/common.sh"

make_tenants
"$tracemark" keygen --signing --out "$work/server" >/dev/null   # the server's signing key
"$tracemark" keygen --signing --out "$work/partner" >/dev/null  # another signer it trusts (--trust)
"$tracemark" keygen --signing --out "$work/stranger" >/dev/null # a signer it does not trust

# --- the signing key is read at start: a key others can read is refused ------------
cp "$work/server.key" "$work/open.key" && chmod 644 "$work/open.key"
set +e
"$tracemark" serve --model "$model" --tokenizer "$tokenizer" --tenants "$work/tenants.yaml" --port 0 \
  --sign "$work/open.key" 2>"$work/open.err"; code=$?
set -e
[ $code -eq 1 ] && grep -q "chmod 600" "$work/open.err" && ! grep -q "PRIVATE" "$work/open.err" ||
  fail "a signing key others can read: exit $code: $(cat "$work/open.err")"
echo "ok - a signing key others can read is refused at start"

"$tracemark" serve --model "$model" --tokenizer "$tokenizer" --tenants "$work/tenants.yaml" --port 0 \
  --parallel 2 --threads 1 --chat-template chatml --model-name stories --sign "$work/server.key" \
  --trust "$work/partner.pub" --kv-type f16 2>"$work/serve.log" &  # (run.sh serves with the default F32 cache)
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/serve.log" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || fail "the server did not start"
  sleep 0.1
done
port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/serve.log")
[ -n "$port" ] || fail "no port in the server's log"
base=http://127.0.0.1:$port
grep -q "signing replies as [0-9a-f]\{64\}" "$work/serve.log" || fail "no signer fingerprint in the log"
echo "server on $base (pid $server_pid), signing"

auth=(-H "Authorization: Bearer $acme_api")
expect() { # expect STATUS CODE_IN_BODY curl-args...
  local want=$1 code=$2; shift 2
  local got
  got=$(curl -s -o "$work/body" -w '%{http_code}' "$@")
  [ "$got" = "$want" ] || fail "curl $*: HTTP $got, wanted $want: $(head -c 300 "$work/body")"
  [ -z "$code" ] || grep -q "\"code\":\"$code\"" "$work/body" || fail "curl $*: no code $code in $(head -c 300 "$work/body")"
}
verify() { # verify NAME [more verify flags]: TEXT and MANIFEST saved by a client
  local name=$1; shift
  "$tracemark" verify "$work/$name.txt" --manifest "$work/$name.manifest.json" --trust "$work/server.pub" "$@" \
    --json > "$work/$name.verdict.json" || fail "tracemark verify $name: $(cat "$work/$name.verdict.json")"
}

# --- curl: a completion, n = 2 ------------------------------------------------------
prompt="Once upon a time"
expect 200 "" "${auth[@]}" -d "{\"model\": \"stories\", \"prompt\": \"$prompt\", \"max_tokens\": 60, \"seed\": 5, \"n\": 2}" \
  "$base/v1/completions"
cp "$work/body" "$work/completion.json"
python3 - "$work/completion.json" "$work" "$acme_api" <<'PY' || fail "the reply's manifests"
import json, sys
reply, out, api_key = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
manifests = reply["tracemark"]["manifests"]
assert len(manifests) == len(reply["choices"]) == 2, reply
for i, (choice, m) in enumerate(zip(reply["choices"], manifests)):
    assert m["type"] == "tracemark.manifest" and m["generator"]["seed"] == str(5 + i), m
    assert m["watermark"]["key_id"] == reply["tracemark"]["key_id"], m
    text = json.dumps(m)
    assert api_key not in text and "PRIVATE" not in text, "a secret in a manifest"
    open(f"{out}/curl-{i}.txt", "w").write(choice["text"])
    json.dump(m, open(f"{out}/curl-{i}.manifest.json", "w"))
PY
for i in 0 1; do
  verify "curl-$i" --key "$work/acme.key" --watermark "$scheme" --tokenizer "$tokenizer"
  python3 - "$work/curl-$i.verdict.json" <<'PY' || fail "verify curl-$i: $(cat "$work/curl-$i.verdict.json")"
import json, sys
v = json.load(open(sys.argv[1]))
assert v["verified"] and v["watermark"]["key_id_matches_manifest"], v
PY
done
echo "ok - curl: each choice's text and manifest pass tracemark verify --trust server.pub (watermark key id matches)"
key_secret=$(sed -n 's/^key: //p' "$work/acme.key")
! grep -rq "$key_secret" "$work"/curl-*.manifest.json || fail "the watermark key is in a manifest"

# The manifest records what generate --sign records for the same key, seed and prompt.
"$tracemark" generate --model "$model" --tokenizer "$tokenizer" --watermark "$scheme" --key "$work/acme.key" \
  --seed 5 --max-tokens 60 --prompt "$prompt" --output "$work/generated.txt" --sign "$work/server.key" \
  --kv-type f16 >/dev/null
python3 - "$work/curl-0.manifest.json" "$work/generated.txt.manifest.json" "$work/generated.txt" "$work/curl-0.txt" "$prompt" <<'PY' ||
import json, sys
server, cli = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert server["generator"] == cli["generator"], (server["generator"], cli["generator"])
assert server["generator"]["sampling"]["kv_cache"] == "f16", server["generator"]
assert server["watermark"] == cli["watermark"], (server["watermark"], cli["watermark"])
assert server["signer"] == cli["signer"]
# generate signs prompt + text; the server signs the returned text, the same tokens.
assert open(sys.argv[3]).read() == sys.argv[5] + open(sys.argv[4]).read()
PY
  fail "the server's manifest and generate --sign's disagree"
echo "ok - the manifest's generation facts (model name and SHA-256, sampling, seed, watermark) are generate --sign's"

# A changed text fails the content check.
printf '%s!' "$(cat "$work/curl-0.txt")" > "$work/changed.txt"
set +e
"$tracemark" verify "$work/changed.txt" --manifest "$work/curl-0.manifest.json" --trust "$work/server.pub" >/dev/null; code=$?
set -e
[ $code -eq 3 ] || fail "a changed text verified (exit $code)"
echo "ok - a changed text does not verify (exit 3)"

# --- curl: streams (completion, and chat with n = 2) ----------------------------------
sse_save() { # sse_save SSE_FILE NAME CHAT: deltas joined per choice, manifests from the last chunk
  python3 - "$1" "$work/$2" "$3" <<'PY'
import json, sys
events = [l[6:] for l in open(sys.argv[1]).read().split("\n\n") if l.startswith("data: ")]
assert events[-1] == "[DONE]", events[-1]
chunks = [json.loads(e) for e in events[:-1]]
assert all("manifests" not in c["tracemark"] for c in chunks[:-1]), "manifests before the last chunk"
manifests = chunks[-1]["tracemark"]["manifests"]
texts = [""] * len(manifests)
for c in chunks:
    for choice in c["choices"]:
        texts[choice["index"]] += choice["delta"].get("content") or "" if sys.argv[3] == "chat" else choice["text"]
for i, (t, m) in enumerate(zip(texts, manifests)):
    open(f"{sys.argv[2]}-{i}.txt", "w").write(t)
    json.dump(m, open(f"{sys.argv[2]}-{i}.manifest.json", "w"))
print(len(manifests))
PY
}
curl -sN "${auth[@]}" -d "{\"model\": \"stories\", \"prompt\": \"$prompt\", \"max_tokens\": 60, \"seed\": 5, \"stream\": true}" \
  "$base/v1/completions" > "$work/stream.sse"
[ "$(sse_save "$work/stream.sse" stream text)" = 1 ] || fail "stream: one manifest expected"
verify stream-0
cmp -s "$work/stream-0.txt" "$work/curl-0.txt" || fail "the streamed text is not the unstreamed one"
curl -sN "${auth[@]}" -d '{"model": "stories", "messages": [{"role": "user", "content": "A story?"}], "max_tokens": 40, "seed": 9, "n": 2, "stop": ["."], "stream": true}' \
  "$base/v1/chat/completions" > "$work/chat.sse"
[ "$(sse_save "$work/chat.sse" chat chat)" = 2 ] || fail "chat stream: two manifests expected"
verify chat-0
verify chat-1
echo "ok - curl streams: the last chunk before [DONE] carries manifests that verify the streamed texts (completion; chat, n = 2, a stop string)"

# --- the OpenAI client ------------------------------------------------------------------
if command -v node >/dev/null && (cd "$work" && npm init -y >/dev/null &&
   npm install --no-audit --no-fund --loglevel=error openai >/dev/null 2>npm.log); then
  cp "$here/sign.mjs" "$work/"
  node "$work/sign.mjs" "$base/v1" stories "$acme_api" "$work" || fail "OpenAI client checks"
  for name in openai-completion-0 openai-completion-1 openai-stream openai-chat; do verify "$name"; done
  echo "ok - what the OpenAI client saved verifies with tracemark verify"
else
  echo "SKIP (part): node or npm install openai unavailable; the OpenAI client checks did not run"
fi

# --- POST /v1/verify --------------------------------------------------------------------
post_verify() { # post_verify TEXT_FILE MANIFEST_FILE|- [API_KEY] -> $work/body
  python3 - "$1" "$2" > "$work/request.json" <<'PY'
import json, sys
body = {"text": open(sys.argv[1], encoding="utf-8").read()}
if sys.argv[2] != "-": body["manifest"] = json.load(open(sys.argv[2]))
print(json.dumps(body))
PY
  expect 200 "" -H "Authorization: Bearer ${3:-$acme_api}" --data-binary @"$work/request.json" "$base/v1/verify"
}
# The same verdict as tracemark verify --json with acme's key.
post_verify "$work/curl-1.txt" "$work/curl-1.manifest.json"
python3 - "$work/body" "$work/curl-1.verdict.json" <<'PY' || fail "/v1/verify and tracemark verify --json disagree"
import json, sys
server, cli = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert server["verified"] and server["manifest"]["source"] == "request", server
assert server["watermark"]["tenant"] == "acme" and server["watermark"]["tenants_tested"] == 1, server
for k in cli:
    if k == "manifest": continue
    if k == "watermark":
        for w in cli[k]: assert server[k][w] == cli[k][w], (w, server[k][w], cli[k][w])
    else: assert server[k] == cli[k], (k, server[k], cli[k])
PY
echo "ok - /v1/verify gives tracemark verify --json's verdict (acme's key named by the manifest)"
# The manifest as its JSON text, and embedded in the text (tracemark sign --embed).
python3 -c "import json,sys; print(json.dumps({'text': open(sys.argv[1]).read(), 'manifest': open(sys.argv[2]).read()}))" \
  "$work/curl-0.txt" "$work/curl-0.manifest.json" > "$work/request.json"
expect 200 "" "${auth[@]}" --data-binary @"$work/request.json" "$base/v1/verify"
grep -q '"verified":true' "$work/body" || fail "manifest as a string: $(cat "$work/body")"
cp "$work/curl-0.txt" "$work/embed.txt"
"$tracemark" sign "$work/embed.txt" --signing-key "$work/partner.key" --embed --out "$work/embedded.txt" >/dev/null
post_verify "$work/embedded.txt" -
python3 -c "import json,sys; v=json.load(open(sys.argv[1])); assert v['verified'] and v['manifest']['source'] == 'embedded', v" \
  "$work/body" || fail "an embedded manifest by a --trust signer: $(cat "$work/body")"
echo "ok - /v1/verify: a manifest as JSON text, and one embedded by a --trust signer"
# Not verified: a changed text (the watermark still attributes it), a stranger's
# signature, no manifest at all (beta's text attributed to beta over both tenants).
printf '%s and more' "$(cat "$work/curl-1.txt")" > "$work/changed.txt"
post_verify "$work/changed.txt" "$work/curl-1.manifest.json"
python3 -c "import json,sys; v=json.load(open(sys.argv[1])); assert not v['verified'] and v['failed_check'] == 'content' and v['watermark']['tenant'] == 'acme', v" \
  "$work/body" || fail "changed text: $(cat "$work/body")"
"$tracemark" sign "$work/embed.txt" --signing-key "$work/stranger.key" --out "$work/stranger.manifest.json" >/dev/null
post_verify "$work/embed.txt" "$work/stranger.manifest.json"
python3 -c "import json,sys; v=json.load(open(sys.argv[1])); assert not v['verified'] and v['failed_check'] == 'signer', v" \
  "$work/body" || fail "a stranger's signature: $(cat "$work/body")"
expect 200 "" -H "Authorization: Bearer $beta_api" -d '{"model": "stories", "prompt": "Once upon a time", "max_tokens": 200, "seed": 3}' "$base/v1/completions"
python3 -c "import json,sys; open(sys.argv[2],'w').write(json.load(open(sys.argv[1]))['choices'][0]['text'])" "$work/body" "$work/beta.txt"
post_verify "$work/beta.txt" -
python3 -c "
import json,sys; v=json.load(open(sys.argv[1])); w=v['watermark']
assert not v['verified'] and v['failed_check'] == 'no_manifest', v
assert w['tenant'] == 'beta' and w['tenants_tested'] == 2 and w['detected'] and w['p_decision'] >= w['p_value'], v" \
  "$work/body" || fail "no manifest: $(cat "$work/body")"
echo "ok - /v1/verify: a changed text, a stranger's signature, and no manifest (beta's text attributed to beta) are not verified"
# Errors are OpenAI error objects.
expect 400 invalid_json "${auth[@]}" -d '{"text": ' "$base/v1/verify"
expect 400 missing_required_parameter "${auth[@]}" -d '{"manifest": {}}' "$base/v1/verify"
expect 400 invalid_type "${auth[@]}" -d '{"text": 7}' "$base/v1/verify"
expect 400 invalid_type "${auth[@]}" -d '{"text": "x", "manifest": 7}' "$base/v1/verify"
expect 401 invalid_api_key -d '{"text": "x"}' "$base/v1/verify"
expect 405 method_not_allowed "${auth[@]}" "$base/v1/verify"
expect 200 "" "${auth[@]}" -d '{"text": "x", "manifest": "{not json"}' "$base/v1/verify"
grep -q '"failed_check":"manifest"' "$work/body" || fail "a malformed manifest: $(cat "$work/body")"
echo "ok - /v1/verify errors: bad JSON, no text, wrong types, no key, wrong method; a malformed manifest is a verdict"

kill -TERM "$server_pid"
set +e; wait "$server_pid"; code=$?; set -e
server_pid=
[ $code -eq 0 ] || fail "the server exited $code after SIGTERM"

# --- --trust without --sign: nothing signed, /v1/verify still checks -------------------
"$tracemark" serve --model "$model" --tokenizer "$tokenizer" --tenants "$work/tenants.yaml" --port 0 \
  --threads 1 --model-name stories --trust "$work/server.pub" 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/serve.log")
base=http://127.0.0.1:$port
! grep -q "signing replies" "$work/serve.log" || fail "a server without --sign says it signs"
expect 200 "" "${auth[@]}" -d '{"model": "stories", "prompt": "Once", "max_tokens": 4}' "$base/v1/completions"
! grep -q manifests "$work/body" || fail "a server without --sign sent manifests"
post_verify "$work/curl-0.txt" "$work/curl-0.manifest.json"
grep -q '"verified":true' "$work/body" || fail "--trust alone: $(cat "$work/body")"
kill -TERM "$server_pid"
set +e; wait "$server_pid"; code=$?; set -e
server_pid=
[ $code -eq 0 ] || fail "the second server exited $code after SIGTERM"
echo "ok - --trust without --sign: replies carry no manifests; /v1/verify checks with the trusted key"
echo "PASS"
