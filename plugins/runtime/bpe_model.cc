#include "internal/bpe_model.h"

#include <fmt/format.h>

#include <queue>
#include <utility>

namespace pio::runtime::internal {

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab, bool ignore_merges)
    : vocab_(std::move(vocab)), ignore_merges_(ignore_merges) {
  for (int b = 0; b < 256; ++b) {
    const auto it = vocab_.find(alphabet_.encode_byte(static_cast<uint8_t>(b)));
    byte_ids_[static_cast<size_t>(b)] = it == vocab_.end() ? -1 : it->second;
  }
}

BpeModel::BpeModel(BpeModel&& other) noexcept
    : alphabet_(std::move(other.alphabet_)),
      vocab_(std::move(other.vocab_)),
      merges_(std::move(other.merges_)),
      byte_ids_(other.byte_ids_),
      ignore_merges_(other.ignore_merges_) {}

Result<BpeModel> BpeModel::create(std::unordered_map<std::string, int32_t> vocab,
                                  const std::vector<std::pair<std::string, std::string>>& merges,
                                  bool ignore_merges) {
  BpeModel model(std::move(vocab), ignore_merges);
  model.merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto l = model.vocab_.find(left);
    const auto r = model.vocab_.find(right);
    const auto m = model.vocab_.find(left + right);
    if (l == model.vocab_.end() || r == model.vocab_.end() || m == model.vocab_.end()) {
      return invalid_argument_error(
          fmt::format("merge {} (\"{}\", \"{}\") uses or makes a token that is not in the vocab",
                      rank, left, right));
    }
    // A pair listed twice keeps its first (best) rank.
    model.merges_.emplace(pair_key(l->second, r->second),
                          Merge{static_cast<uint32_t>(rank), m->second});
  }
  return model;
}

void BpeModel::encode_word(std::string_view raw_bytes, std::vector<int32_t>& ids) const {
  const bool cacheable = raw_bytes.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(raw_bytes);
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = ids.size();
  merge_word(raw_bytes, ids);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(raw_bytes),
                   std::vector<int32_t>(ids.begin() + static_cast<ptrdiff_t>(first), ids.end()));
  }
}

void BpeModel::merge_word(std::string_view raw_bytes, std::vector<int32_t>& ids) const {
  if (ignore_merges_) {
    std::string text;
    for (const char c : raw_bytes) text += alphabet_.encode_byte(static_cast<uint8_t>(c));
    const auto it = vocab_.find(text);
    if (it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }

  // Symbols as a doubly linked list over an array; a merge joins a symbol with its right
  // neighbour. Merges are applied best rank first, leftmost first among equal ranks; a queued
  // candidate is stale when either side has changed since it was queued.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(raw_bytes.size());
  for (const char c : raw_bytes) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id < 0) continue;
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t left_id;
    int32_t right_id;
    int32_t merged_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto push_pair = [&](int32_t pos) {
    const int32_t next = symbols[static_cast<size_t>(pos)].next;
    if (next < 0) return;
    const int32_t left = symbols[static_cast<size_t>(pos)].id;
    const int32_t right = symbols[static_cast<size_t>(next)].id;
    const auto it = merges_.find(pair_key(left, right));
    if (it != merges_.end()) queue.push({it->second.rank, pos, left, right, it->second.merged_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    if (left.id != top.left_id || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    if (right.id != top.right_id) continue;
    // Merge right into left; the right slot is unlinked and marked dead.
    left.id = top.merged_id;
    const int32_t after = right.next;
    left.next = after;
    if (after >= 0) symbols[static_cast<size_t>(after)].prev = top.pos;
    right.id = -1;
    right.next = -1;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    ids.push_back(symbols[static_cast<size_t>(i)].id);
  }
}

}  // namespace pio::runtime::internal
