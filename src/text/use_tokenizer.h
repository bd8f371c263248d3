// The tokenizer of USE-Lite (issue #27), an exact port of the one its npm
// package runs (@energetic-ai/embeddings 0.2.0, itself TF.js's Universal
// Sentence Encoder tokenizer): NFKC, "▁" before the text and for every space,
// then the best-scoring split into the vocabulary's unigram pieces (Viterbi),
// with its tie-breaks and its unknown-character rule kept as they are, so
// the ids are the package's, not SentencePiece's. The vocabulary is the
// package's vocab.json: [[piece, log-probability], ...], ids by position.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sisa {

class UseTokenizer {
 public:
  // DataError naming the file if it is not a JSON list of [piece, score].
  explicit UseTokenizer(const std::string& vocab_json_path);

  // Token ids of UTF-8 text (DataError for invalid UTF-8). Empty text: none.
  std::vector<int32_t> encode(std::string_view text) const;
  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  // The text of ids: the pieces joined, "▁" read as a space (DataError for an id outside the vocabulary).
  std::string decode(const std::vector<int32_t>& ids) const;
  // The id of a piece, or -1.
  int piece_id(const std::string& piece) const;
  // The longest piece, in bytes of UTF-8 text.
  size_t longest_piece_bytes() const { return longest_bytes_; }

 private:
  struct Piece {
    double score;
    int32_t id;
  };
  // Ids below this are reserved (unknown, <s>, </s>, 3 extra): never matched.
  static constexpr int kReserved = 6;
  std::vector<std::u32string> pieces_;                // by id
  std::unordered_map<std::u32string, Piece> lookup_;  // the trie's words; a later duplicate wins
  size_t longest_ = 1;                                // code points
  size_t longest_bytes_ = 1;
};

}  // namespace sisa
