// A bounded loopback load test for `tracemark serve`: CLIENTS clients each
// send REQUESTS requests one after another (completions and chat, streamed
// and not), while IDLE connections are held open doing nothing; every fifth
// request of a client is malformed JSON or oversized and must get its 400 or
// 413 without disturbing anything else. Prints one JSON line: counts,
// failures, and latency p50/p99 of the good requests. Exit 1 on any failure.
// Usage: node load.mjs HOST PORT MODEL API_KEY [CLIENTS REQUESTS IDLE]
import http from "node:http";
import net from "node:net";

const [host, port, model, apiKey, clients = "16", requests = "25", idle = "50"] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function post(path, body, headers = {}) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const req = http.request({ host, port, path, method: "POST", agent,
                               headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}`,
                                          "content-length": Buffer.byteLength(body), ...headers } }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, data,
                                    ms: Number(process.hrtime.bigint() - started) / 1e6 }));
    });
    req.on("error", (e) => resolve({ status: 0, data: String(e), ms: 0 }));
    req.end(body);
  });
}

// Idle connections: opened, never used, closed at the end.
const sockets = [];
for (let i = 0; i < Number(idle); i++) {
  const s = net.connect(Number(port), host);
  s.on("error", () => {});
  sockets.push(s);
}

const latencies = [];
let good = 0, rejected = 0, failures = [];
async function client(id) {
  for (let i = 0; i < Number(requests); i++) {
    const kind = (id + i) % 5;
    if (i % 5 === 4) {
      // Malformed or oversized, alternately.
      const oversized = (id + i) % 2 === 0;
      const body = oversized ? JSON.stringify({ model, prompt: "x".repeat(1100000) }) : '{"model": "' + model + '", "prompt": ';
      const r = await post("/v1/completions", body);
      if (r.status !== (oversized ? 413 : 400) || !JSON.parse(r.data).error) failures.push(`bad request got ${r.status}`);
      else rejected++;
      continue;
    }
    const stream = kind === 1 || kind === 3;
    const chat = kind >= 2;
    const body = chat
      ? { model, messages: [{ role: "user", content: `Story ${id}.${i}` }], max_tokens: 12, seed: id * 100 + i, stream }
      : { model, prompt: `Once upon a time ${id}`, max_tokens: 12, seed: id * 100 + i, stream };
    const r = await post(chat ? "/v1/chat/completions" : "/v1/completions", JSON.stringify(body));
    const okBody = stream ? r.data.endsWith("data: [DONE]\n\n") : (() => {
      try { return JSON.parse(r.data).choices.length === 1; } catch { return false; }
    })();
    if (r.status !== 200 || !okBody) failures.push(`request ${id}.${i} got ${r.status}: ${r.data.slice(0, 200)}`);
    else {
      good++;
      latencies.push(r.ms);
    }
  }
}
const t0 = Date.now();
await Promise.all(Array.from({ length: Number(clients) }, (_, id) => client(id)));
const seconds = (Date.now() - t0) / 1000;
const stillOpen = sockets.filter((s) => !s.destroyed && s.readyState === "open").length;
for (const s of sockets) s.destroy();
agent.destroy();
latencies.sort((a, b) => a - b);
const pct = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : NaN;
console.log(JSON.stringify({ clients: Number(clients), requests_each: Number(requests), idle_connections: Number(idle),
                             idle_still_open: stillOpen, good, rejected_as_expected: rejected, failures: failures.length,
                             seconds, p50_ms: +pct(0.5).toFixed(1), p99_ms: +pct(0.99).toFixed(1) }));
for (const f of failures.slice(0, 10)) console.error(f);
process.exit(failures.length ? 1 : 0);
