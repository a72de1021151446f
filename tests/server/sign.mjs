// Drives a `tracemark serve --sign` with the official OpenAI client (npm
// `openai`): a completion, a streamed completion (manifests in the last chunk
// before [DONE]) and a streamed chat each leave TEXT and MANIFEST files for
// `tracemark verify` (tests/server/sign.sh runs it), and POST /v1/verify is
// called through the client's generic post(). Usage:
//   node sign.mjs BASE_URL MODEL API_KEY OUT_DIR
import OpenAI from "openai";
import { writeFileSync } from "node:fs";
import assert from "node:assert/strict";

const [baseURL, model, apiKey, out] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const check = async (name, f) => {
  await f();
  console.log(`ok - ${name}`);
};
const save = (name, text, manifest) => {
  writeFileSync(`${out}/${name}.txt`, text);
  writeFileSync(`${out}/${name}.manifest.json`, JSON.stringify(manifest));
};
const prompt = "Once upon a time";

let plain;
await check("openai: a completion carries one signed manifest per choice", async () => {
  plain = await client.completions.create({ model, prompt, max_tokens: 40, seed: 31, n: 2 });
  const m = plain.tracemark.manifests;
  assert.equal(m.length, 2);
  for (const [i, c] of plain.choices.entries()) {
    assert.equal(m[i].content.length, Buffer.byteLength(c.text));
    assert.equal(m[i].generator.seed, String(31 + i));
    assert.equal(m[i].watermark.key_id, plain.tracemark.key_id);
    save(`openai-completion-${i}`, c.text, m[i]);
  }
});

await check("openai: a stream's last chunk before [DONE] carries the manifest of the streamed text", async () => {
  const stream = await client.completions.create({ model, prompt, max_tokens: 40, seed: 31, stream: true });
  let text = "", manifests = null, after = 0;
  for await (const chunk of stream) {
    if (manifests) after++;
    for (const c of chunk.choices) text += c.text;
    if (chunk.tracemark.manifests) manifests = chunk.tracemark.manifests;
  }
  assert.ok(manifests, "no chunk carried manifests");
  assert.equal(after, 0, "the manifest chunk was not the last");
  assert.equal(text, plain.choices[0].text);
  assert.equal(manifests.length, 1);
  save("openai-stream", text, manifests[0]);
});

await check("openai: a streamed chat with usage carries the manifest in the usage chunk", async () => {
  const messages = [{ role: "user", content: "Tell me a story." }];
  const stream = await client.chat.completions.create({ model, messages, max_tokens: 40, seed: 8, stream: true,
                                                        stream_options: { include_usage: true } });
  let text = "", last = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    last = chunk;
  }
  assert.ok(last.usage && last.tracemark.manifests, "the last chunk lacks usage or manifests");
  save("openai-chat", text, last.tracemark.manifests[0]);
});

await check("openai: POST /v1/verify through the client", async () => {
  const v = await client.post("/verify", { body: { text: plain.choices[1].text, manifest: plain.tracemark.manifests[1] } });
  assert.equal(v.verified, true, JSON.stringify(v));
  assert.equal(v.watermark.tenant, "acme");
  const changed = await client.post("/verify", { body: { text: plain.choices[1].text + "!", manifest: plain.tracemark.manifests[1] } });
  assert.equal(changed.verified, false);
  assert.equal(changed.failed_check, "content");
  await assert.rejects(client.post("/verify", { body: { text: 7 } }),
                       (e) => e instanceof OpenAI.BadRequestError && e.param === "text");
});
