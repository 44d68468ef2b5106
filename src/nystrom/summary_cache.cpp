// The summary cache: a LibTorch archive holding a JSON header and the raw kernel sums. A cache made
// with another configuration or other data is refused, naming the field that differs; one whose sums
// do not match the header's checksum (flipped bits, a value overwritten) or are not finite is refused
// as corrupted. The trainer then rebuilds it.
#include <sstream>

#include <nlohmann/json.hpp>

#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/projected_field.h"

namespace driftx {

namespace {

constexpr int kCacheVersion = 2;  // 2: "checksum" over the sums

nlohmann::json header_of(const ProjectedField& f, const std::vector<torch::Tensor>& landmarks,
                         const std::string& strategy, const std::string& data_fingerprint) {
  return {{"format", "driftx-summary-cache"},
          {"version", kCacheVersion},
          {"dim", f.dim()},
          {"landmarks", f.num_landmarks()},
          {"classes", f.layout().classes},
          {"shards", f.layout().shards},
          {"temperatures", f.config().temperatures},
          {"ridge", f.config().ridge},
          {"scale", f.scale()},
          {"landmark_strategy", strategy},
          {"landmark_fingerprint", tensor_fingerprint(torch::cat(landmarks, 0))},
          {"data_fingerprint", data_fingerprint}};
}

// Fingerprint (CRC-32 of shape, dtype and bytes) of every summary tensor, in the archive's order.
std::string checksum_of(const std::vector<std::vector<DataSummary>>& summaries) {
  std::string all;
  for (const auto& shard : summaries)
    for (const auto& s : shard)
      for (const auto* t : {&s.ksum, &s.kysum, &s.counts}) all += tensor_fingerprint(*t) + ";";
  return tensor_fingerprint(bytes_to_tensor(all));
}

std::vector<torch::Tensor> all_landmarks(const ProjectedField& f) {
  std::vector<torch::Tensor> out;
  for (int64_t k = 0; k < f.layout().shards; ++k) out.push_back(f.map(k, 0).landmarks());
  return out;
}

}  // namespace

void ProjectedField::save(const std::string& path, const std::string& landmark_strategy,
                          const std::string& data_fingerprint) const {
  for (const auto& shard : summaries_)
    for (const auto& s : shard)
      for (const auto* t : {&s.ksum, &s.kysum, &s.counts})
        DRIFTX_CHECK(torch::isfinite(*t).all().item<bool>(), "summaries for '{}' are not finite: not cached", path);
  torch::serialize::OutputArchive archive;
  auto header = header_of(*this, all_landmarks(*this), landmark_strategy, data_fingerprint);
  header["checksum"] = checksum_of(summaries_);
  archive.write("header", bytes_to_tensor(header.dump()));
  for (size_t k = 0; k < summaries_.size(); ++k)
    for (size_t t = 0; t < summaries_[k].size(); ++t) {
      const auto key = fmt::format("s{}_t{}_", k, t);
      archive.write(key + "ksum", summaries_[k][t].ksum);
      archive.write(key + "kysum", summaries_[k][t].kysum);
      archive.write(key + "counts", summaries_[k][t].counts);
    }
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_with_crc(path, bytes.str());
}

void ProjectedField::load(const std::string& path, const std::string& landmark_strategy,
                          const std::string& data_fingerprint) {
  // The CRC footer first (a damaged archive made LibTorch allocate gigabytes); then LibTorch reports a
  // bad archive with c10::Error or, for damaged TorchScript code inside it, torch::jit::ErrorReport (a
  // std::exception): both become one driftx::Error, which the trainer answers by rebuilding the
  // summaries (both found by fuzz/fuzz_summary_cache).
  const std::string bytes = read_file_with_crc(path, "summary cache");
  torch::serialize::InputArchive archive;
  try {
    archive = open_archive(bytes, fmt::format("summary cache '{}' (delete it to rebuild)", path));
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    fail("summary cache '{}' is missing or not a driftx summary cache: delete it to rebuild", path);
  }
  auto try_read = [&](const std::string& key, torch::Tensor& out) {
    try {
      return archive.try_read(key, out);
    } catch (const std::exception&) {
      fail("summary cache '{}' is corrupt (cannot read {}): delete it to rebuild", path, key);
    }
  };
  torch::Tensor raw;
  DRIFTX_CHECK(try_read("header", raw), "summary cache '{}' has no header: delete it to rebuild", path);
  nlohmann::json got;
  try {
    got = nlohmann::json::parse(tensor_to_bytes(raw));
  } catch (const nlohmann::json::exception&) {
    fail("summary cache '{}' has a corrupt header: delete it to rebuild", path);
  }
  const auto want = header_of(*this, all_landmarks(*this), landmark_strategy, data_fingerprint);
  for (const auto& [key, value] : want.items())
    DRIFTX_CHECK(got.contains(key) && got[key] == value,
                 "summary cache '{}' was built with {} = {}, this run has {}: delete the cache or match the configuration",
                 path, key, got.contains(key) ? got[key].dump() : "nothing", value.dump());
  auto read = summaries_;
  for (size_t k = 0; k < read.size(); ++k)
    for (size_t t = 0; t < read[k].size(); ++t) {
      const auto key = fmt::format("s{}_t{}_", k, t);
      DataSummary s;
      DRIFTX_CHECK(try_read(key + "ksum", s.ksum) && try_read(key + "kysum", s.kysum) && try_read(key + "counts", s.counts),
                   "summary cache '{}' is truncated (missing {}): delete it to rebuild", path, key);
      auto same = [](const torch::Tensor& a, const torch::Tensor& b) {
        return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type();
      };
      DRIFTX_CHECK(same(s.ksum, read[k][t].ksum) && same(s.kysum, read[k][t].kysum) && same(s.counts, read[k][t].counts),
                   "summary cache '{}' has wrong shapes or types: delete it to rebuild", path);
      read[k][t] = s;
    }
  DRIFTX_CHECK(got.contains("checksum") && got["checksum"] == checksum_of(read),
               "summary cache '{}' is corrupted: its sums do not match the stored checksum", path);
  for (const auto& shard : read)
    for (const auto& s : shard)
      for (const auto* t : {&s.ksum, &s.kysum, &s.counts})
        DRIFTX_CHECK(torch::isfinite(*t).all().item<bool>(), "summary cache '{}' is corrupted: non-finite sums", path);
  summaries_ = std::move(read);
  folded_ = false;
}

}  // namespace driftx
