// The official OpenAI Node SDK against `pio serve`, serving the echo plugin in a low-trust
// sandboxed worker: echo answers with the text it was given, so every answer can be checked
// exactly. Run by ctest (tests/server/CMakeLists.txt) with:
//   PIO_BIN        the pio binary          PIO_ECHO_DIR  the built echo plugin folder
//   NODE_PATH      where the pinned SDK is installed (scripts/fetch-test-data.sh)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import crypto from 'node:crypto';

const require = createRequire(import.meta.url);
const { OpenAI } = require(path.join(process.env.NODE_PATH, 'openai'));

let server;
let client;
let port;
let root;
const apiKey = 'sk-pio-test-alpha';

function copyPlugin(from, to) {
  fs.mkdirSync(to, { recursive: true, mode: 0o755 });
  for (const f of ['libecho.so', 'plugin_manifest.json']) {
    fs.copyFileSync(path.join(from, f), path.join(to, f));
    fs.chmodSync(path.join(to, f), 0o755);
  }
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pio-sdk-test-'));
  fs.chmodSync(root, 0o755);
  copyPlugin(process.env.PIO_ECHO_DIR, path.join(root, 'plugins', 'echo'));
  fs.chmodSync(path.join(root, 'plugins'), 0o755);
  fs.mkdirSync(path.join(root, 'model'), { mode: 0o755 });
  // One tenant; the server keeps only the SHA-256 of its key.
  const keyHash = crypto.createHash('sha256').update(apiKey).digest('hex');
  const config = path.join(root, 'host.json');
  fs.writeFileSync(config, JSON.stringify({
    server: { tenants: { alpha: { api_keys_sha256: [keyHash], models: ['echo'] } } },
  }));
  server = spawn(process.env.PIO_BIN, ['serve', '--plugin', 'echo', '--model', path.join(root, 'model'),
    '--plugin-dir', path.join(root, 'plugins'), '--port', '0', '--max-body-bytes', '1048576',
    '--config', config],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  port = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\/v1/);
      if (m) resolve(Number(m[1]));
    });
    server.on('exit', (code) => reject(new Error(`pio serve exited with ${code}: ${out}`)));
  });
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey, maxRetries: 0 });
});

after(async () => {
  if (server) {
    const exited = new Promise((resolve) => server.on('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(root, { recursive: true, force: true });
});

test('the models list names the served plugin', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['echo']);
  assert.equal(models.data[0].object, 'model');
});

test('a chat completion answers what was asked with consistent usage', async () => {
  const text = 'Hello, 世界 😀';
  const r = await client.chat.completions.create({
    model: 'echo', messages: [{ role: 'system', content: 'ignored' }, { role: 'user', content: text }],
    max_tokens: 100, temperature: 0.5, top_p: 0.9, seed: 3, user: 'tenant-user',
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, 'echo');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, text);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const codePoints = [...text].length;
  assert.equal(r.usage.completion_tokens, codePoints);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('a completion stops at max_tokens with finish_reason length', async () => {
  const r = await client.completions.create({ model: 'echo', prompt: 'abcdef', max_tokens: 3 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, 'abc');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 3);
});

test('n gives that many choices', async () => {
  const r = await client.chat.completions.create({
    model: 'echo', messages: [{ role: 'user', content: 'xy' }], n: 2,
  });
  assert.deepEqual(r.choices.map((c) => [c.index, c.message.content]), [[0, 'xy'], [1, 'xy']]);
  assert.equal(r.usage.completion_tokens, 4);
});

test('a streamed chat joins to the answer and ends with the usage', async () => {
  const text = 'streaming ünïcode ✓';
  const stream = await client.chat.completions.create({
    model: 'echo', messages: [{ role: 'user', content: text }], stream: true,
    stream_options: { include_usage: true },
  });
  let joined = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      joined += choice.delta.content ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(joined, text);
  assert.equal(finish, 'stop');
  assert.ok(chunks > [...text].length, `${chunks} chunks`);
  assert.equal(usage.completion_tokens, [...text].length);
});

test('a streamed completion joins to the answer', async () => {
  const stream = await client.completions.create({ model: 'echo', prompt: 'pieces', stream: true });
  let joined = '';
  for await (const chunk of stream) joined += chunk.choices[0]?.text ?? '';
  assert.equal(joined, 'pieces');
});

test('an unknown model is a NotFoundError', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found');
});

test('an oversized request is refused with 413, every time', async () => {
  // The client is still sending when the 413 is written: the server drains the rest of the body
  // before it closes (lingering close), else the SDK sees a reset ("Connection error.").
  const big = 'x'.repeat(16 * 1024 * 1024);
  for (let i = 0; i < 3; i += 1) {
    await assert.rejects(
      client.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: big }] }),
      (e) => e instanceof OpenAI.APIError && e.status === 413 && e.code === 'request_too_large');
  }
});

test('a field out of range is a BadRequestError naming it', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'x' }], temperature: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
});

test('a wrong API key is an AuthenticationError', async () => {
  const intruder = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(intruder.models.list(),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === 'invalid_api_key');
  await assert.rejects(
    intruder.chat.completions.create({ model: 'echo', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.AuthenticationError);
});
