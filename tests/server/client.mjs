// Drives a running `tracemark serve` with the official OpenAI client (the
// npm package `openai`): completions, chat, streaming, seeds, n > 1, stop
// strings, logprobs and the error classes. Usage:
//   node client.mjs BASE_URL MODEL API_KEY OUT_TEXT_FILE
// Exits non-zero on the first failed check; prints one line per check.
import OpenAI from "openai";
import { writeFileSync } from "node:fs";
import assert from "node:assert/strict";

const [baseURL, model, apiKey, outFile] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const check = async (name, f) => {
  await f();
  console.log(`ok - ${name}`);
};

await check("models.list names the model", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [model]);
});

const prompt = "Once upon a time";
let completion;
await check("completions: text, usage, finish_reason and the tracemark object", async () => {
  completion = await client.completions.create({ model, prompt, max_tokens: 24, seed: 11 });
  const c = completion.choices[0];
  assert.equal(typeof c.text, "string");
  assert.ok(c.text.length > 0);
  assert.ok(["stop", "length"].includes(c.finish_reason));
  assert.equal(completion.usage.prompt_tokens + completion.usage.completion_tokens, completion.usage.total_tokens);
  assert.ok(completion.usage.completion_tokens <= 24);
  assert.equal(completion.tracemark.scheme, "kgw");
  assert.match(completion.tracemark.key_id, /^[0-9a-f]{16}$/);
  assert.equal(completion.tracemark.seed, 11);
  assert.equal(completion.tracemark.tenant, "acme");
});

await check("the same seed gives the same text; another seed another", async () => {
  const again = await client.completions.create({ model, prompt, max_tokens: 24, seed: 11 });
  assert.equal(again.choices[0].text, completion.choices[0].text);
  const other = await client.completions.create({ model, prompt, max_tokens: 24, seed: 12 });
  assert.notEqual(other.choices[0].text, completion.choices[0].text);
});

await check("n = 3 gives three indexed choices", async () => {
  const r = await client.completions.create({ model, prompt, max_tokens: 16, n: 3, seed: 5 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  assert.ok(new Set(r.choices.map((c) => c.text)).size > 1, "choices differ");
  assert.equal(r.usage.prompt_tokens, 5, "one prompt counted once");
});

await check("a stop string ends the text before it", async () => {
  const free = await client.completions.create({ model, prompt, max_tokens: 64, seed: 3 });
  const text = free.choices[0].text;
  const at = text.indexOf(".");
  assert.ok(at > 0, "the unstopped text has a full stop: " + text);
  const stopped = await client.completions.create({ model, prompt, max_tokens: 64, seed: 3, stop: ["."] });
  assert.equal(stopped.choices[0].text, text.slice(0, at));
  assert.equal(stopped.choices[0].finish_reason, "stop");
});

await check("streamed completions add up to the same text, ending in [DONE]", async () => {
  const stream = await client.completions.create({ model, prompt, max_tokens: 24, seed: 11, stream: true,
                                                   stream_options: { include_usage: true } });
  let text = "", finish = null, usage = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
    assert.equal(chunk.tracemark.scheme, "kgw");
  }
  assert.equal(text, completion.choices[0].text);
  assert.equal(finish, completion.choices[0].finish_reason);
  assert.deepEqual(usage, completion.usage);
});

const messages = [{ role: "system", content: "You tell stories." }, { role: "user", content: "Tell me a story." }];
let chat;
await check("chat completions answer as the assistant", async () => {
  chat = await client.chat.completions.create({ model, messages, max_tokens: 24, seed: 21 });
  assert.equal(chat.object, "chat.completion");
  assert.equal(chat.choices[0].message.role, "assistant");
  assert.ok(chat.choices[0].message.content.length > 0);
  assert.equal(chat.tracemark.tenant, "acme");
});

await check("streamed chat adds up to the same message", async () => {
  const stream = await client.chat.completions.create({ model, messages, max_tokens: 24, seed: 21, stream: true });
  let text = "", role = null;
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta ?? {};
    if (d.role) role = d.role;
    if (d.content) text += d.content;
  }
  assert.equal(role, "assistant");
  assert.equal(text, chat.choices[0].message.content);
});

await check("chat logprobs: one entry per token, top alternatives sorted", async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 8, seed: 2, logprobs: true,
                                                   top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  assert.equal(content.map((t) => t.token).join(""), r.choices[0].message.content);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
    assert.ok(t.logprob <= t.top_logprobs[0].logprob + 1e-6);
  }
});

await check("errors come back as the client's error classes", async () => {
  await assert.rejects(client.completions.create({ model: "no-such-model", prompt }),
                       (e) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found");
  await assert.rejects(client.completions.create({ model, prompt, max_tokens: "many" }),
                       (e) => e instanceof OpenAI.BadRequestError && e.param === "max_tokens");
  await assert.rejects(client.chat.completions.create({ model, messages: [{ role: "wizard", content: "x" }] }),
                       (e) => e instanceof OpenAI.BadRequestError && e.param === "messages");
  const stranger = new OpenAI({ baseURL, apiKey: "sk-not-a-key-of-this-server", maxRetries: 0 });
  await assert.rejects(stranger.completions.create({ model, prompt }), (e) => e instanceof OpenAI.AuthenticationError);
});

await check("a long completion for detection", async () => {
  const r = await client.completions.create({ model, prompt, max_tokens: 200, seed: 99 });
  assert.ok(r.usage.completion_tokens > 100);
  writeFileSync(outFile, r.choices[0].text);
});
