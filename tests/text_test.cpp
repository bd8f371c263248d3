// The SentencePiece seam (src/text/tokenizer.h): the plugin loads into a
// process that has libtorch loaded (linked into one process, the two crash
// before main), trains deterministically and encodes; bad text is refused.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "sisa/errors.h"
#include "test_util.h"
#include "text/tokenizer.h"

using namespace sisa;
using sisa::test::TempDir;

namespace {

// AddressSanitizer does not support dlmopen, which loads the plugin (scripts/test-sanitized.sh).
#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_ASAN() GTEST_SKIP() << "dlmopen is not supported under AddressSanitizer"
#else
#define SKIP_UNDER_ASAN() (void)0
#endif

// A few hundred short sentences over a small vocabulary.
std::string corpus() {
  const char* words[] = {"the",   "small", "domesticated", "carnivore", "a",     "bird",   "that",  "sings", "river",
                         "flows", "into",  "sea",          "light",     "of",    "day",    "night", "falls", "over",
                         "hills", "and",   "quiet",        "towns",     "where", "people", "sleep"};
  std::string text;
  uint64_t x = 7;
  for (int line = 0; line < 400; ++line) {
    for (int w = 0; w < 8; ++w) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      text += std::string(words[(x >> 33) % 25]) + (w < 7 ? " " : "\n");
    }
  }
  return text;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A 40-piece model of corpus(), as dir/a.model; returns how it was trained.
TokenizerTraining train_small_tokenizer(const TempDir& dir) {
  test::write_text(dir / "corpus.txt", corpus());
  TokenizerTraining t;
  t.input = dir / "corpus.txt";
  t.vocab_size = 40;
  t.model_path = dir / "a.model";
  Tokenizer::train(t);
  return t;
}

TEST(Tokenizer, TrainsDeterministicallyAndEncodesInATorchProcess) {
  SKIP_UNDER_ASAN();
  TempDir dir;
  TokenizerTraining t = train_small_tokenizer(dir);
  const std::string a = read(dir / "a.model");
  ASSERT_FALSE(a.empty());
  // The model records no path: another corpus path and output give the same bytes.
  test::write_text(dir / "copy.txt", corpus());
  t.input = dir / "copy.txt";
  t.model_path = dir / "b.model";
  Tokenizer::train(t);
  EXPECT_TRUE(a == read(dir / "b.model")) << "the same text and options must give the same model file";

  const Tokenizer tok(dir / "a.model");
  EXPECT_EQ(tok.vocab_size(), 40);
  const auto ids = tok.encode("the small bird sings over quiet hills");
  ASSERT_FALSE(ids.empty());
  for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < 40) << id;
  EXPECT_EQ(tok.encode("the small bird sings over quiet hills"), ids);
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_THROW(tok.encode(std::string("caf\xc3", 4)), DataError);  // a truncated UTF-8 sequence
}

TEST(Tokenizer, Utf8IsCheckedStrictly) {
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xc3"));              // truncated
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(valid_utf8("\xff"));
}

TEST(Tokenizer, AMissingModelIsAnErrorNamingIt) {
  SKIP_UNDER_ASAN();
  try {
    Tokenizer tok("/nonexistent/tok.model");
    FAIL() << "loaded a model that does not exist";
  } catch (const UsageError& e) {  // a path the user gave (data.tokenizer): exit 2
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tok.model"), std::string::npos) << e.what();
  }
}

// What a tokenizer reads must be a regular file: a directory or a FIFO is
// refused by name (once a SIGABRT inside SentencePiece, or a hang).
TEST(Tokenizer, ADirectoryOrAFifoIsRefusedNamingIt) {
  SKIP_UNDER_ASAN();
  TempDir dir;
  std::filesystem::create_directories(dir / "d");
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  for (const std::string path : {dir / "d", dir / "fifo", std::string("/dev/zero")}) {
    try {
      Tokenizer tok(path);
      ADD_FAILURE() << "loaded " << path;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + path + "'"), std::string::npos) << e.what();
    }
  }
  TokenizerTraining t;
  t.input = dir / "fifo";
  t.model_path = dir / "x.model";
  EXPECT_THROW(Tokenizer::train(t), DataError);
  // An empty corpus, or one line, cannot give 40 pieces: the text is at fault (exit 3), not I/O.
  for (const std::string text : {"", "a few words on one line\n"}) {
    test::write_text(dir / "small.txt", text);
    t.input = dir / "small.txt";
    t.vocab_size = 40;
    try {
      Tokenizer::train(t);
      ADD_FAILURE() << "trained on '" << text << "'";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("small.txt"), std::string::npos) << e.what();
    }
  }
}

// A text is encoded from at most byte_bound(max_tokens) bytes, cut at a word
// boundary: for ordinary text the row equals the whole text's first ids, and
// 8 MB of one character costs no more than the bound.
TEST(Tokenizer, LongTextsAreEncodedFromABoundedHeadWithTheSameIds) {
  SKIP_UNDER_ASAN();
  TempDir dir;
  train_small_tokenizer(dir);
  const Tokenizer tok(dir / "a.model");
  const std::string text = corpus();  // 3,200 words on 400 lines
  for (int64_t max_tokens : {1, 5, 16, 64, 300}) {
    ASSERT_LT(tok.byte_bound(max_tokens), text.size()) << max_tokens;
    const auto head = tok.bounded(text, max_tokens);
    EXPECT_LE(head.size(), tok.byte_bound(max_tokens));
    std::vector<int32_t> want = tok.encode(text), tokens, lengths;
    want.resize(static_cast<size_t>(max_tokens));
    EXPECT_TRUE(append_token_row(tok, text, max_tokens, &tokens, &lengths));
    EXPECT_EQ(tokens, want) << max_tokens;
    EXPECT_EQ(lengths, std::vector<int32_t>{static_cast<int32_t>(max_tokens)});
  }
  EXPECT_EQ(tok.bounded("the small bird", 16), "the small bird");  // short texts are whole
  const std::string hostile(8u << 20, 'x');
  EXPECT_LE(tok.bounded(hostile, 32).size(), tok.byte_bound(32));
  EXPECT_LE(tok.bounded(std::string(8u << 20, ' ') + hostile, 32).size(), tok.byte_bound(32));
  std::string cut;  // a cut falls on a character boundary
  for (int i = 0; i < 20000; ++i) cut += "\xc3\xa9";
  EXPECT_TRUE(valid_utf8(tok.bounded(cut, 8)));
  std::vector<int32_t> tokens, lengths;
  EXPECT_TRUE(append_token_row(tok, hostile, 32, &tokens, &lengths));
  EXPECT_EQ(tokens.size(), 32u);
}

}  // namespace
