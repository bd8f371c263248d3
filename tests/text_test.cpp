// The SentencePiece seam (src/text/tokenizer.h): the plugin loads into a
// process that has libtorch loaded (linked into one process, the two crash
// before main), trains deterministically and encodes; bad text is refused.
#include <gtest/gtest.h>

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
  const char* words[] = {"the", "small", "domesticated", "carnivore", "a", "bird", "that", "sings", "river",
                         "flows", "into", "sea", "light", "of", "day", "night", "falls", "over", "hills",
                         "and", "quiet", "towns", "where", "people", "sleep"};
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

TEST(Tokenizer, TrainsDeterministicallyAndEncodesInATorchProcess) {
  SKIP_UNDER_ASAN();
  TempDir dir;
  test::write_text(dir / "corpus.txt", corpus());
  TokenizerTraining t;
  t.input = dir / "corpus.txt";
  t.vocab_size = 40;
  t.model_path = dir / "a.model";
  Tokenizer::train(t);
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
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tok.model"), std::string::npos) << e.what();
  }
}

}  // namespace
