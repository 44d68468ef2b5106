#include "driftx/projected_field.h"

#include <zlib.h>

#include <algorithm>
#include <exception>
#include <thread>

#include "driftx/error.h"
#include "driftx/kernel.h"
#include "driftx/npy.h"

namespace driftx {

namespace {

using torch::indexing::Slice;

// Rows of `labels` per distinct value, in ascending value order.
std::vector<std::pair<int64_t, torch::Tensor>> groups_of(const torch::Tensor& labels) {
  std::vector<std::pair<int64_t, torch::Tensor>> out;
  auto values = std::get<0>(at::_unique(labels, /*sorted=*/true));
  for (int64_t i = 0; i < values.numel(); ++i) {
    int64_t v = values[i].item<int64_t>();
    out.emplace_back(v, (labels == v).nonzero().squeeze(1));
  }
  return out;
}

// Rows of x per label (undefined labels: one group of all rows), indices on x's device.
std::vector<std::pair<int64_t, torch::Tensor>> query_groups(const torch::Tensor& labels, const torch::Tensor& x) {
  if (labels.defined()) return groups_of(labels.to(x.device(), torch::kLong));
  return {{0, torch::arange(x.size(0), torch::dtype(torch::kLong).device(x.device()))}};
}

// Queries in equal, contiguous blocks of one class each, every class once (the trainer's class-major
// batches): the block size and each block's class. Read from labels on the CPU only (a few hundred
// integers; labels on a device would need a sync), else nullopt.
struct ClassBlocks {
  int64_t size = 0;
  std::vector<int64_t> classes;
};

std::optional<ClassBlocks> class_blocks(const torch::Tensor& labels) {
  if (!labels.defined() || !labels.is_cpu() || labels.numel() == 0) return std::nullopt;
  auto l = labels.to(torch::kLong).contiguous().reshape({-1});
  const auto* p = l.data_ptr<int64_t>();
  const int64_t B = l.numel();
  ClassBlocks out;
  while (out.size < B && p[out.size] == p[0]) ++out.size;
  if (B % out.size != 0) return std::nullopt;
  for (int64_t start = 0; start < B; start += out.size) {
    for (int64_t i = start; i < start + out.size; ++i)
      if (p[i] != p[start]) return std::nullopt;
    if (std::find(out.classes.begin(), out.classes.end(), p[start]) != out.classes.end()) return std::nullopt;
    out.classes.push_back(p[start]);
  }
  return out;
}

// Rows `rows` of a tensor: a view when they are evenly spaced and ascending (all classes of a batch in
// order, the default; or one row per shard of a stacked fold), else a gathered copy.
torch::Tensor rows_for(const torch::Tensor& t, const std::vector<int64_t>& rows) {
  const int64_t n = static_cast<int64_t>(rows.size()), step = n > 1 ? rows[1] - rows[0] : 1;
  bool even = step > 0;
  for (int64_t g = 1; g < n && even; ++g) even = rows[g] - rows[g - 1] == step;
  if (even) return t.slice(0, rows[0], rows[0] + (n - 1) * step + 1, step);
  return t.index_select(0, torch::tensor(rows, torch::kLong).to(t.device()));
}

std::vector<double> tau_effs_of(const std::vector<double>& temps, int64_t dim) {
  std::vector<double> out;
  for (double t : temps) out.push_back(effective_temperature(t, dim));
  return out;
}

// The smallest distance of each row over several distance blocks (B x M_k each).
torch::Tensor row_min(const std::vector<torch::Tensor>& dists) {
  torch::Tensor m;
  for (const auto& d : dists) {
    auto dk = std::get<0>(d.min(1));
    m = m.defined() ? torch::minimum(m, dk) : dk;
  }
  return m;
}

// exp(-(shift - common) / tau_eff): 0 where shift is +inf (an empty sum), never NaN.
torch::Tensor shift_factor(const torch::Tensor& shift, const torch::Tensor& common, double tau_eff) {
  auto f = ((shift - common) * (-1.0 / tau_eff)).exp();
  return torch::where(torch::isinf(shift), torch::zeros_like(f), f);
}

ShiftedSums rows_of(const ShiftedSums& s, const torch::Tensor& idx) {
  ShiftedSums out;
  for (const auto& n : s.num) out.num.push_back(n.index_select(0, idx));
  for (const auto& d : s.den) out.den.push_back(d.index_select(0, idx));
  if (s.shift.defined()) out.shift = s.shift.index_select(0, idx);
  return out;
}

}  // namespace

ShiftedSums add_shifted(const ShiftedSums& a, const ShiftedSums& b, const std::vector<double>& tau_effs) {
  DRIFTX_CHECK(a.num.size() == tau_effs.size() && b.num.size() == tau_effs.size() && a.den.size() == tau_effs.size() &&
                   b.den.size() == tau_effs.size(),
               "shifted kernel sums: need one numerator and denominator per temperature ({})", tau_effs.size());
  const int64_t B = a.den[0].size(0);
  const auto opts = a.den[0].options().dtype(torch::kFloat32);
  auto sa = a.shift.defined() ? a.shift.to(torch::kFloat32) : torch::zeros({B}, opts);
  auto sb = b.shift.defined() ? b.shift.to(torch::kFloat32) : torch::zeros({B}, opts);
  ShiftedSums out;
  out.shift = torch::minimum(sa, sb);
  // Both empty (+inf): keep the sums at 0 (factors 0) with shift 0, so later arithmetic stays finite.
  auto common = torch::where(torch::isinf(out.shift), torch::zeros_like(out.shift), out.shift);
  for (size_t t = 0; t < tau_effs.size(); ++t) {
    auto fa = shift_factor(sa, common, tau_effs[t]), fb = shift_factor(sb, common, tau_effs[t]);
    out.num.push_back(a.num[t] * fa.unsqueeze(1) + b.num[t] * fb.unsqueeze(1));
    out.den.push_back(a.den[t] * fa + b.den[t] * fb);
  }
  out.shift = common;
  return out;
}

void DataSummary::add(const DataSummary& other) {
  DRIFTX_CHECK(ksum.sizes() == other.ksum.sizes() && kysum.sizes() == other.kysum.sizes(),
               "data summaries of different shapes cannot be added ({} vs {})", shape_str(kysum.sizes()),
               shape_str(other.kysum.sizes()));
  ksum.add_(other.ksum);
  kysum.add_(other.kysum);
  counts.add_(other.counts);
}

double projected_feature_scale(const torch::Tensor& real, const torch::Tensor& landmarks, int64_t chunk) {
  torch::NoGradGuard no_grad;
  DRIFTX_CHECK(real.dim() == 2 && landmarks.dim() == 2 && real.size(1) == landmarks.size(1) && real.size(0) > 0,
               "feature scale: real ({}) and landmarks ({}) must be n x D and M x D", shape_str(real.sizes()),
               shape_str(landmarks.sizes()));
  const int64_t M = landmarks.size(0), D = real.size(1), K = std::min<int64_t>(M, 256);
  auto idx = torch::linspace(0, static_cast<double>(M - 1), K, torch::kFloat64).round().to(torch::kLong);
  auto U = landmarks.index_select(0, idx).to(torch::kFloat32);
  // The same bits whatever the thread count (S is in the summary cache's header: `launch --nproc 2` and
  // a plain run must share the cache; 0.72606977063 vs ...223 before). A BLAS product splits its work,
  // and so its rounding, by the thread count, and so do LibTorch's reductions. So: one product per fixed
  // chunk, each single-threaded (the chunks shared out over threads, as ranks are), summed in float64
  // in one fixed order.
  const int64_t n = real.size(0), chunks = (n + chunk - 1) / chunk;
  std::vector<double> sums(static_cast<size_t>(chunks), 0.0);
  const int threads = at::get_num_threads();
  const int64_t workers = std::min<int64_t>(threads, chunks);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(workers));
  std::vector<std::thread> pool;
  for (int64_t w = 0; w < workers; ++w)
    pool.emplace_back([&, w] {
      try {
        at::set_num_threads(1);
        torch::NoGradGuard no_grad_here;  // grad mode is per thread
        for (int64_t c = w; c < chunks; c += workers) {
          auto y = real.narrow(0, c * chunk, std::min(chunk, n - c * chunk)).to(torch::kFloat32);
          const auto d = euclidean_distances(y, U).to(torch::kFloat64).contiguous();
          const double* p = d.data_ptr<double>();
          double sum = 0;
          for (int64_t i = 0, m = d.numel(); i < m; ++i) sum += p[i];
          sums[static_cast<size_t>(c)] = sum;
        }
      } catch (...) {
        errors[static_cast<size_t>(w)] = std::current_exception();
      }
    });
  for (auto& t : pool) t.join();
  at::set_num_threads(threads);  // the workers' setting is partly process-wide: restore the caller's
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  double total = 0;
  for (double sum : sums) total += sum;
  return total / (static_cast<double>(real.size(0)) * K) / std::sqrt(static_cast<double>(D));
}

ProjectedField::ProjectedField(const torch::Tensor& landmarks, const torch::Tensor& landmark_labels,
                               ShardLayout layout, double scale, ProjectedFieldConfig config)
    : config_(std::move(config)), layout_(layout), scale_(scale) {
  torch::NoGradGuard no_grad;
  DRIFTX_CHECK(landmarks.dim() == 2 && landmarks.size(0) >= 1,
               "projected field: landmarks must be M x D with M >= 1, got {}", shape_str(landmarks.sizes()));
  require_finite(landmarks, "projected field landmarks");
  DRIFTX_CHECK(std::isfinite(scale) && scale > 0, "projected field: feature scale must be positive, got {}", scale);
  DRIFTX_CHECK(layout_.classes >= 1 && layout_.shards >= 1 && layout_.shards <= layout_.classes,
               "projected field: need 1 <= shards ({}) <= classes ({})", layout_.shards, layout_.classes);
  DRIFTX_CHECK(!config_.temperatures.empty(), "projected field: at least one temperature is needed");
  DRIFTX_CHECK(config_.ridge >= 0 && config_.eps > 0 && config_.chunk > 0 && config_.landmark_block >= 0,
               "projected field: need ridge >= 0, eps > 0, chunk > 0, landmark block >= 0");
  dim_ = landmarks.size(1);
  num_landmarks_ = landmarks.size(0);
  auto U = landmarks.to(torch::kFloat32) / scale_;
  torch::Tensor shard_of;  // M: shard of each landmark
  if (layout_.shards == 1) {
    shard_of = torch::zeros({num_landmarks_}, torch::kLong);
  } else {
    DRIFTX_CHECK(landmark_labels.defined() && landmark_labels.numel() == num_landmarks_,
                 "projected field: class sharding needs one label per landmark ({} landmarks)", num_landmarks_);
    auto lab = landmark_labels.to(torch::kLong);
    DRIFTX_CHECK(lab.min().item<int64_t>() >= 0 && lab.max().item<int64_t>() < layout_.classes,
                 "projected field: landmark labels must lie in [0, {})", layout_.classes);
    shard_of = layout_.shard_of_classes(lab);
  }
  const auto tau_effs = tau_effs_of(config_.temperatures, dim_);
  for (int64_t k = 0; k < layout_.shards; ++k) {
    auto idx = (shard_of == k).nonzero().squeeze(1);
    DRIFTX_CHECK(idx.numel() > 0, "projected field: shard {} of {} has no landmarks; give every shard's classes landmarks "
                 "or use fewer shards", k, layout_.shards);
    shard_landmarks_.push_back(U.index_select(0, idx).contiguous());
    maps_.emplace_back();
    summaries_.emplace_back();
    for (double te : tau_effs) {
      maps_[k].emplace_back(shard_landmarks_[k], te, config_.ridge);
      const int64_t Mk = idx.numel();
      const int64_t Ck = layout_.classes_in(k);
      summaries_[k].push_back({torch::zeros({Ck, Mk}, torch::kFloat64), torch::zeros({Ck, Mk, dim_}, torch::kFloat64),
                               torch::zeros({Ck}, torch::kLong)});
    }
  }
}

void ProjectedField::add_data(const torch::Tensor& real, const torch::Tensor& labels) {
  torch::NoGradGuard no_grad;
  DRIFTX_CHECK(real.dim() == 2 && real.size(1) == dim_, "projected field: real data must be n x {}, got {}", dim_,
               shape_str(real.sizes()));
  require_finite(real, "projected field real data");
  torch::Tensor lab;
  if (layout_.classes > 1) {
    DRIFTX_CHECK(labels.defined() && labels.numel() == real.size(0),
                 "projected field: {} classes need one label per real sample ({} samples, {} labels)", layout_.classes,
                 real.size(0), labels.defined() ? labels.numel() : 0);
    lab = labels.to(torch::kLong).reshape({-1});
    DRIFTX_CHECK(real.size(0) == 0 || (lab.min().item<int64_t>() >= 0 && lab.max().item<int64_t>() < layout_.classes),
                 "projected field: data labels must lie in [0, {})", layout_.classes);
  } else {
    lab = torch::zeros({real.size(0)}, torch::kLong);
  }
  const auto shard_of_sample = layout_.shard_of_classes(lab);
  for (int64_t start = 0; start < real.size(0); start += config_.chunk) {
    const int64_t n = std::min(config_.chunk, real.size(0) - start);
    auto ys = real.narrow(0, start, n).to(torch::kFloat32) / scale_;
    auto lc = lab.narrow(0, start, n);
    auto sc = shard_of_sample.narrow(0, start, n);
    // The shards present in the chunk (hundreds of shards: a map per (class, vector)).
    auto present = layout_.shards == 1 ? std::vector<std::pair<int64_t, torch::Tensor>>{{0, torch::Tensor()}}
                                        : groups_of(sc);
    for (const auto& [k, rows] : present) {
      auto yk = rows.defined() ? ys.index_select(0, rows) : ys;
      auto lk = rows.defined() ? lc.index_select(0, rows) : lc;
      // One distance matrix per chunk and shard, shared by every temperature.
      auto dist = euclidean_distances(yk, shard_landmarks_[k]);  // n_k x M_k
      const int64_t c0 = layout_.first_class(k);  // the shard's summary rows start at its first class
      auto class_groups = groups_of(lk);
      for (const auto& [c, idx] : class_groups) {
        auto dc = class_groups.size() == 1 ? dist : dist.index_select(0, idx);
        auto Yc = class_groups.size() == 1 ? yk : yk.index_select(0, idx);
        // Column shift (SPEC §3, numerical stability): each landmark's nearest sample of this block has
        // kernel value 1 in the float32 products; the factor exp(-e / tau_eff) is applied in float64,
        // so a landmark far from a class keeps its small but non-zero sums.
        auto e = std::get<0>(dc.min(0));  // M_k
        auto shifted = dc - e.unsqueeze(0);
        for (size_t t = 0; t < maps_[k].size(); ++t) {
          const double inv_tau = -1.0 / maps_[k][t].tau_eff();
          auto K = (shifted * inv_tau).exp_();
          auto f = (e.to(torch::kFloat64) * inv_tau).exp_();
          auto& sum = summaries_[k][t];
          sum.ksum[c - c0].add_(K.sum(0).to(torch::kFloat64) * f);
          sum.kysum[c - c0].add_(torch::matmul(K.t(), Yc).to(torch::kFloat64) * f.unsqueeze(1));
        }
      }
      for (auto& sum : summaries_[k]) sum.counts.index_add_(0, lk - c0, torch::ones_like(lk));
    }
  }
  folded_ = false;
}

void ProjectedField::check_compatible(const ProjectedField& other) const {
  DRIFTX_CHECK(dim_ == other.dim_ && num_landmarks_ == other.num_landmarks_,
               "summaries are incompatible: dimension/landmarks {}/{} vs {}/{}", dim_, num_landmarks_, other.dim_,
               other.num_landmarks_);
  DRIFTX_CHECK(layout_.classes == other.layout_.classes && layout_.shards == other.layout_.shards,
               "summaries are incompatible: classes/shards {}/{} vs {}/{}", layout_.classes, layout_.shards,
               other.layout_.classes, other.layout_.shards);
  DRIFTX_CHECK(config_.temperatures == other.config_.temperatures, "summaries are incompatible: temperatures differ");
  DRIFTX_CHECK(config_.ridge == other.config_.ridge, "summaries are incompatible: ridge {} vs {}", config_.ridge,
               other.config_.ridge);
  DRIFTX_CHECK(scale_ == other.scale_, "summaries are incompatible: feature scale {} vs {}", scale_, other.scale_);
  for (size_t k = 0; k < shard_landmarks_.size(); ++k)
    DRIFTX_CHECK(torch::equal(shard_landmarks_[k], other.shard_landmarks_[k]),
                 "summaries are incompatible: shard {} was built on different landmarks", k);
}

void ProjectedField::merge_from(const ProjectedField& other) {
  check_compatible(other);
  for (size_t k = 0; k < summaries_.size(); ++k)
    for (size_t t = 0; t < summaries_[k].size(); ++t) summaries_[k][t].add(other.summaries_[k][t]);
  folded_ = false;
}

void ProjectedField::set_query_options(int64_t landmark_block, ProductPrecision products) {
  DRIFTX_CHECK(landmark_block >= 0, "projected field: landmark block must be >= 0 (0: all landmarks), got {}",
               landmark_block);
  config_.landmark_block = landmark_block;
  config_.products = products;
  folded_ = false;
}

DataSummary& ProjectedField::mutable_summary(int64_t shard, size_t t) {
  folded_ = false;
  return summaries_.at(shard).at(t);
}

int64_t ProjectedField::summarised_samples() const {
  int64_t n = 0;
  for (const auto& shard : summaries_) n += shard[0].counts.sum().item<int64_t>();
  return n;
}

double ProjectedField::max_condition_number() const {
  double c = 0;
  for (const auto& shard : maps_)
    for (const auto& m : shard) c = std::max(c, m.condition_number());
  return c;
}

int64_t ProjectedField::summary_bytes() const {
  int64_t bytes = 0;
  for (const auto& shard : summaries_)
    for (const auto& sum : shard) bytes += sum.ksum.nbytes() + sum.kysum.nbytes();
  return bytes;
}

int64_t ProjectedField::folded_bytes() const {
  const int64_t per_value = config_.products == ProductPrecision::BFloat16 ? 4 + 2 : 4;  // float32 (+ bf16 copy)
  int64_t bytes = 0;
  for (size_t k = 0; k < maps_.size(); ++k) {
    const int64_t M = shard_landmarks_[k].size(0);
    bytes += M * dim_ * 4;  // query_landmarks_
    for (const auto& sum : summaries_[k])  // fold_ (+ fold_low_), query_amap_
      bytes += (sum.ksum.size(0) + fold_extra_rows()) * M * (dim_ + 1) * per_value + M * M * 4;
  }
  return bytes;
}

void ProjectedField::fold(const torch::Device& device) const {
  const bool low = config_.products == ProductPrecision::BFloat16;
  if (folded_ && fold_device_ == device && fold_low_.empty() != low) return;
  torch::NoGradGuard no_grad;
  fold_.assign(maps_.size(), {});
  fold_low_.assign(low ? maps_.size() : 0, {});
  query_amap_.assign(maps_.size(), {});
  query_landmarks_.clear();
  for (size_t k = 0; k < maps_.size(); ++k) {
    query_landmarks_.push_back(shard_landmarks_[k].to(device));
    for (size_t t = 0; t < maps_[k].size(); ++t) {
      // Folded form (SPEC §3): Amap Sy = Amap Amap kysum = (W + ridge I)^-1 kysum and Amap s =
      // (W + ridge I)^-1 ksum, in float64, side by side: [num | den], (C_k + extra) x M_k x (D+1): the
      // shard's classes, then its all-data row, then (sharded fields) a zero row for the other classes.
      const auto& inv = maps_[k][t].inverse();
      const auto& sum = summaries_[k][t];
      std::vector<torch::Tensor> ks{sum.ksum, sum.ksum.sum(0, true)}, kys{sum.kysum, sum.kysum.sum(0, true)};
      if (fold_extra_rows() == 2) ks.push_back(torch::zeros_like(ks[1])), kys.push_back(torch::zeros_like(kys[1]));
      auto both = torch::cat({torch::cat(kys, 0), torch::cat(ks, 0).unsqueeze(2)}, 2);
      fold_[k].push_back(torch::matmul(inv, both).to(torch::kFloat32).contiguous().to(device));
      if (low) fold_low_[k].push_back(fold_[k].back().to(torch::kBFloat16));
      query_amap_[k].push_back(maps_[k][t].amap().to(torch::kFloat32).to(device));
    }
  }
  // Equal shards: stack them (one batched product serves class blocks of many shards) and keep the
  // per-shard tensors as views into the stacks.
  stacked_landmarks_ = torch::Tensor();
  stacked_fold_.clear();
  stacked_fold_low_.clear();
  fold_offset_.clear();
  bool equal = layout_.shards > 1;
  for (const auto& U : shard_landmarks_) equal = equal && U.size(0) == shard_landmarks_[0].size(0);
  if (equal) {
    stacked_landmarks_ = torch::stack(query_landmarks_);
    for (size_t k = 0; k < maps_.size(); ++k) query_landmarks_[k] = stacked_landmarks_[k];
    int64_t offset = 0;
    for (size_t k = 0; k < maps_.size(); ++k) fold_offset_.push_back(offset), offset += fold_[k][0].size(0);
    auto stack_rows = [&](std::vector<std::vector<torch::Tensor>>& per_shard, std::vector<torch::Tensor>& stacked) {
      for (size_t t = 0; t < per_shard[0].size(); ++t) {
        std::vector<torch::Tensor> parts;
        for (auto& shard : per_shard) parts.push_back(shard[t]);
        stacked.push_back(torch::cat(parts, 0));
        for (size_t k = 0; k < per_shard.size(); ++k)
          per_shard[k][t] = stacked.back().narrow(0, fold_offset_[k], per_shard[k][t].size(0));
      }
    };
    stack_rows(fold_, stacked_fold_);
    if (low) stack_rows(fold_low_, stacked_fold_low_);
  }
  fold_device_ = device;
  folded_ = true;
}

bool ProjectedField::batch_classes(const torch::Tensor& x) const {
  return config_.class_batching == ClassBatching::Batched ||
         (config_.class_batching == ClassBatching::Auto && !x.is_cpu());
}

ProjectedField::KernelSums ProjectedField::kernel_sums(const torch::Tensor& xs, const torch::Tensor& labels,
                                                       KernelSums* all_data, torch::Tensor* touched) const {
  torch::NoGradGuard no_grad;
  auto x = xs.to(torch::kFloat32);
  fold(x.device());
  const auto opts = x.options();
  const int64_t B = xs.size(0), C = layout_.classes, D = dim_;
  const auto tau_effs = tau_effs_of(config_.temperatures, dim_);
  const size_t nt = tau_effs.size();
  const bool low = config_.products == ProductPrecision::BFloat16;
  const auto& F = low ? fold_low_ : fold_;
  const bool separate_all = all_data && labels.defined();  // unconditional queries: the sums are the same
  const int64_t all_shards = -1;
  // Query sets, each streamed over the landmarks of one shard (or of all shards) with its own shifts.
  // Class-conditional queries of a sharded field go by their class's shard: the other shards hold no
  // data of their class (their folded class rows are zero), so only the own shard's landmarks are
  // touched and the shift is the smallest distance to them. The all-data sums (guidance, or
  // unconditional queries) need every shard, with one common shift.
  struct QuerySet {
    torch::Tensor rows;  // on the labels' device (CPU labels: class blocks are read there); undefined: all
    int64_t shard = all_shards;
  };
  std::vector<QuerySet> sets;
  torch::Tensor lab;  // labels on x's device
  if (labels.defined()) {
    lab = labels.to(x.device(), torch::kLong).reshape({-1});
    if (B > 0) {
      const auto lo = lab.min().item<int64_t>(), hi = lab.max().item<int64_t>();
      DRIFTX_CHECK(lo >= 0 && hi < C, "projected field: query label {} outside [0, {})", lo < 0 ? lo : hi, C);
    }
  }
  // Stacked equal shards and class blocks: one batched product for every shard (a loop of query sets,
  // one per shard, is launch-bound with many small shards: a map per (class, vector) gives hundreds).
  if (labels.defined() && !separate_all && stacked_landmarks_.defined() && batch_classes(x) &&
      (config_.landmark_block == 0 || stacked_landmarks_.size(1) <= config_.landmark_block))
    if (const auto blocks = class_blocks(labels)) return shard_blocks(x, blocks->classes, touched);
  if (!labels.defined() || separate_all) {
    sets.push_back({{}, layout_.shards == 1 ? 0 : all_shards});
  } else if (layout_.shards == 1) {
    sets.push_back({{}, 0});
  } else {
    auto parts = groups_of(layout_.shard_of_classes(labels.to(torch::kLong).reshape({-1})));
    for (auto& [k, idx] : parts) sets.push_back({parts.size() == 1 ? torch::Tensor() : idx, k});
  }
  std::vector<torch::Tensor> num(nt), den(nt), anum(separate_all ? nt : 0), aden(separate_all ? nt : 0);
  torch::Tensor shift;
  // Sums are written straight out when one set covers every query in order, else scattered into these.
  auto full_outputs = [&] {
    if (shift.defined()) return;
    for (size_t t = 0; t < nt; ++t) {
      num[t] = torch::zeros({B, D}, opts), den[t] = torch::zeros({B}, opts);
      if (separate_all) anum[t] = torch::zeros({B, D}, opts), aden[t] = torch::zeros({B}, opts);
    }
    shift = torch::zeros({B}, opts);
  };
  if (touched) *touched = torch::zeros({B}, opts.dtype(torch::kLong));
  for (const auto& set : sets) {
    const auto rows = set.rows.defined() ? set.rows.to(x.device()) : torch::Tensor();
    auto xq = rows.defined() ? x.index_select(0, rows) : x;  // reordered by class below (loop)
    auto lq = !labels.defined() ? torch::Tensor() : rows.defined() ? lab.index_select(0, rows) : lab;
    const int64_t n = xq.size(0);
    // How the set's queries meet their class rows: one batched product over equal contiguous class
    // blocks, or one product per class present, or (no labels) the unconditional row C.
    std::optional<ClassBlocks> blocks;
    if (lq.defined() && batch_classes(x))
      blocks = class_blocks(!labels.is_cpu()    ? torch::Tensor()
                            : set.rows.defined() ? labels.reshape({-1}).index_select(0, set.rows)
                                                 : labels);
    auto class_groups = lq.defined() && !blocks ? groups_of(lq) : std::vector<std::pair<int64_t, torch::Tensor>>{};
    // Per-class products on contiguous rows: the set's queries are put in class order once, so each
    // class is a row range [first, first + count) of the kernel block and of the accumulators (no
    // gathered copy of kernel rows per block and temperature, no scatter-add).
    struct ClassRange {
      int64_t c, first, count;
    };
    std::vector<ClassRange> ranges;
    auto out_rows = rows;  // where the set's accumulator rows go (undefined: all queries, in order)
    if (class_groups.size() > 1) {
      std::vector<torch::Tensor> parts;
      for (const auto& [c, idx] : class_groups) {
        ranges.push_back({c, ranges.empty() ? 0 : ranges.back().first + ranges.back().count, idx.numel()});
        parts.push_back(idx);
      }
      auto order = torch::cat(parts);
      xq = xq.index_select(0, order);
      out_rows = rows.defined() ? rows.index_select(0, order) : order;
    } else if (class_groups.size() == 1) {
      ranges.push_back({class_groups[0].first, 0, xq.size(0)});
    }
    std::vector<int64_t> shards;
    for (int64_t k = 0; k < layout_.shards; ++k)
      if (set.shard == all_shards || set.shard == k) shards.push_back(k);
    // Batched class blocks: each block's row in shard k's fold (all-shard queries meet other shards' zero row).
    std::vector<std::vector<int64_t>> local_rows(layout_.shards);
    if (blocks)
      for (int64_t k : shards)
        for (int64_t c : blocks->classes) local_rows[k].push_back(fold_row(c, k));
    // Accumulators per temperature, n x (D+1) ([num | den]), shifted by the running minimum distance
    // `m` (online rescaling: a block that lowers m_i multiplies row i by exp(-(m_old - m_new) / tau_eff)).
    std::vector<torch::Tensor> acc(nt), acc_all(separate_all ? nt : 0);
    for (size_t t = 0; t < nt; ++t) {
      acc[t] = torch::zeros({n, D + 1}, opts);
      if (separate_all) acc_all[t] = torch::zeros({n, D + 1}, opts);
    }
    // acc += K @ Fb, in the configured precision (float32: in place, no temporary).
    auto add_product = [&](torch::Tensor& into, const torch::Tensor& K, const torch::Tensor& Fb) {
      if (low)
        into.add_(matmul_in(K, Fb, ProductPrecision::BFloat16));
      else if (into.dim() == 2)
        into.addmm_(K, Fb);
      else
        into.baddbmm_(K, Fb);
    };
    torch::Tensor m, K;
    int64_t touched_n = 0;
    for (int64_t k : shards) {
      const auto& U = query_landmarks_[k];
      const int64_t Mk = U.size(0), L = config_.landmark_block > 0 ? std::min(config_.landmark_block, Mk) : Mk;
      touched_n += Mk;
      for (int64_t l0 = 0; l0 < Mk; l0 += L) {
        const int64_t l = std::min(L, Mk - l0);
        auto d = euclidean_distances(xq, U.narrow(0, l0, l));  // n x l
        auto bmin = std::get<0>(d.min(1));
        torch::Tensor lowered;  // m_old - m_new >= 0; undefined on the first block
        if (!m.defined()) {
          m = bmin;
        } else {
          auto m_new = torch::minimum(m, bmin);
          lowered = m - m_new;
          m = m_new;
        }
        d.sub_(m.unsqueeze(1));  // >= 0: the block's kernel values are <= 1
        if (!K.defined() || K.size(1) != l) K = torch::empty({n, l}, opts);
        for (size_t t = 0; t < nt; ++t) {
          const auto k_tau = torch::scalar_tensor(-1.0 / tau_effs[t], opts);
          if (lowered.defined()) {
            auto f = (lowered * k_tau).exp_().unsqueeze(1);
            acc[t].mul_(f);
            if (separate_all) acc_all[t].mul_(f);
          }
          at::mul_out(K, d, k_tau).exp_();
          const auto& Fk = F[k][t];  // (C_k + extra) x M_k x (D+1), see fold()
          const int64_t all_row = layout_.classes_in(k);
          if (!lq.defined()) {
            add_product(acc[t], K, Fk[all_row].narrow(0, l0, l));
          } else if (blocks) {
            const int64_t G = static_cast<int64_t>(blocks->classes.size()), nb = blocks->size;
            auto view = acc[t].view({G, nb, D + 1});
            add_product(view, K.view({G, nb, l}), rows_for(Fk.narrow(1, l0, l), local_rows[k]));
          } else {
            for (const auto& r : ranges) {
              if (layout_.shard_of_class(r.c) != k) continue;  // class c has no data in shard k
              auto into = acc[t].narrow(0, r.first, r.count);
              add_product(into, K.narrow(0, r.first, r.count), Fk[fold_row(r.c, k)].narrow(0, l0, l));
            }
          }
          if (separate_all) add_product(acc_all[t], K, Fk[all_row].narrow(0, l0, l));
        }
      }
    }
    if (touched) {
      if (rows.defined()) touched->index_fill_(0, rows, touched_n); else touched->fill_(touched_n);
    }
    const bool direct = sets.size() == 1 && !out_rows.defined();
    if (!direct) full_outputs();
    auto put = [&](torch::Tensor& into, const torch::Tensor& from) {
      if (direct) into = from; else into.index_copy_(0, out_rows, from);
    };
    for (size_t t = 0; t < nt; ++t) {
      put(num[t], acc[t].narrow(1, 0, D));
      put(den[t], acc[t].select(1, D));
      if (separate_all) put(anum[t], acc_all[t].narrow(1, 0, D)), put(aden[t], acc_all[t].select(1, D));
    }
    put(shift, m);
  }
  if (all_data) *all_data = separate_all ? KernelSums{anum, aden, shift} : KernelSums{num, den, shift};
  return {num, den, shift};
}

ProjectedField::KernelSums ProjectedField::shard_blocks(const torch::Tensor& x, const std::vector<int64_t>& block_classes,
                                                        torch::Tensor* touched) const {
  const int64_t G = static_cast<int64_t>(block_classes.size()), B = x.size(0), nb = B / G, D = dim_;
  const int64_t Mb = stacked_landmarks_.size(1);
  const auto tau_effs = tau_effs_of(config_.temperatures, dim_);
  const bool low = config_.products == ProductPrecision::BFloat16;
  std::vector<int64_t> shard_of_block, fold_row_of_block;
  for (int64_t c : block_classes) {
    const int64_t k = layout_.shard_of_class(c);
    shard_of_block.push_back(k);
    fold_row_of_block.push_back(fold_offset_[k] + fold_row(c, k));
  }
  auto d = euclidean_distances(x.reshape({G, nb, D}), rows_for(stacked_landmarks_, shard_of_block));  // G x nb x Mb
  auto m = std::get<0>(d.min(2, true));                                                             // G x nb x 1
  d.sub_(m);  // >= 0: each query's largest kernel value is 1
  auto K = torch::empty_like(d);
  KernelSums out;
  for (size_t t = 0; t < tau_effs.size(); ++t) {
    at::mul_out(K, d, torch::scalar_tensor(-1.0 / tau_effs[t], d.options())).exp_();
    auto F = rows_for(low ? stacked_fold_low_[t] : stacked_fold_[t], fold_row_of_block);  // G x Mb x (D+1)
    auto acc = low ? matmul_in(K, F, ProductPrecision::BFloat16) : torch::bmm(K, F);        // G x nb x (D+1)
    out.num.push_back(acc.narrow(2, 0, D).reshape({B, D}));
    out.den.push_back(acc.select(2, D).reshape({B}));
  }
  out.shift = m.reshape({B});
  if (touched) *touched = torch::full({B}, Mb, x.options().dtype(torch::kLong));
  return out;
}

std::vector<torch::Tensor> ProjectedField::attractions(const torch::Tensor& xs, const torch::Tensor& labels,
                                                       std::vector<int64_t>* clamped, torch::Tensor* touched) const {
  return divide(kernel_sums(xs, labels, nullptr, touched), clamped);
}

std::vector<torch::Tensor> ProjectedField::divide(const KernelSums& sums, std::vector<int64_t>* clamped) const {
  const auto& num = sums.num;
  const auto& den = sums.den;
  const size_t nt = num.size();
  std::vector<torch::Tensor> out(nt);
  if (clamped) clamped->assign(nt, 0);
  for (size_t t = 0; t < nt; ++t) {
    auto small = den[t] < config_.eps;
    if (clamped) (*clamped)[t] = small.sum().item<int64_t>();
    out[t] = num[t] / den[t].clamp_min(config_.eps).unsqueeze(1);
  }
  return out;
}

ExtraNegatives ProjectedField::guidance_negatives(const KernelSums& all_data, const torch::Tensor& mass) const {
  const int64_t n = summarised_samples();
  DRIFTX_CHECK(n > 0, "projected field: guidance needs summaries of the real data (none summarised)");
  const auto& num = all_data.num;
  const auto& den = all_data.den;
  auto beta = mass.to(den[0].device(), torch::kFloat32) / static_cast<double>(n);
  ExtraNegatives extra;
  for (size_t t = 0; t < num.size(); ++t) {
    auto w = beta * (den[t] > 0).to(torch::kFloat32);  // a non-positive Nystrom estimate adds nothing
    extra.num.push_back(num[t] * w.unsqueeze(1));
    extra.den.push_back(den[t] * w);
  }
  extra.shift = all_data.shift;  // the attraction's shift: the same kernel values
  return extra;
}

std::vector<torch::Tensor> ProjectedField::repulsions(const torch::Tensor& xs, const torch::Tensor& labels,
                                                      const ExtraNegatives* extra) const {
  torch::NoGradGuard no_grad;
  auto x = xs.to(torch::kFloat32);
  if (config_.repulsion == Repulsion::Exact)
    return exact_repulsions(x, labels, tau_effs_of(config_.temperatures, dim_), config_.eps, extra, batch_classes(x));
  // Projected: batch summaries with the self term removed. Sharded maps are concatenated (the same
  // block-diagonal kernel estimate the attraction uses). The batch is both query and data here, so
  // (SPEC §3, numerical stability) the query side is shifted per row by q_i, its smallest distance to
  // the landmarks, and the data side by one shift per group, c = min_j q_j: the sums are the true ones
  // times exp((q_i + c) / tau_eff).
  const auto tau_effs = tau_effs_of(config_.temperatures, dim_);
  const size_t nt = tau_effs.size();
  fold(x.device());
  std::vector<torch::Tensor> dists;
  for (const auto& U : query_landmarks_) dists.push_back(euclidean_distances(x, U));
  auto q = row_min(dists);
  for (auto& d : dists) d.sub_(q.unsqueeze(1));
  std::vector<torch::Tensor> psi(nt);  // per temperature, B x M: psi(x_i) exp(q_i / tau_eff)
  for (size_t t = 0; t < nt; ++t) {
    std::vector<torch::Tensor> parts;
    for (size_t k = 0; k < maps_.size(); ++k)
      parts.push_back(torch::matmul((dists[k] * (-1.0 / tau_effs[t])).exp_(), query_amap_[k][t]));
    psi[t] = torch::cat(parts, 1);
  }
  std::vector<torch::Tensor> out(nt);
  if (const auto blocks = batch_classes(x) ? class_blocks(labels) : std::nullopt) {
    // Equal contiguous class blocks: the loop below as batched products (G x n x n).
    const int64_t G = static_cast<int64_t>(blocks->classes.size()), n = blocks->size;
    auto xb = x.reshape({G, n, dim_});
    auto qb = q.view({G, n});
    auto c = std::get<0>(qb.min(1, true));  // G x 1
    ShiftedSums own;
    own.shift = (qb + c).view({-1});
    for (size_t t = 0; t < nt; ++t) {
      auto pq = psi[t].view({G, n, -1});
      auto pd = pq * ((qb - c) * (-1.0 / tau_effs[t])).exp().unsqueeze(2);
      auto w = torch::bmm(pq, pd.transpose(1, 2));
      w.diagonal(0, 1, 2).zero_();
      own.num.push_back(torch::bmm(w, xb).view({-1, dim_}));
      own.den.push_back(w.sum(2).view({-1}));
    }
    if (extra) own = add_shifted(own, *extra, tau_effs);
    for (size_t t = 0; t < nt; ++t) out[t] = own.num[t] / own.den[t].clamp_min(config_.eps).unsqueeze(1);
    return out;
  }
  auto groups = query_groups(labels, x);
  for (size_t t = 0; t < nt; ++t) out[t] = torch::zeros_like(x);
  for (const auto& [g, idx] : groups) {
    auto xg = x.index_select(0, idx), qg = q.index_select(0, idx);
    const auto c = qg.min();
    ShiftedSums own;
    own.shift = qg + c;
    for (size_t t = 0; t < nt; ++t) {
      auto pq = psi[t].index_select(0, idx);                               // query side
      auto pd = pq * ((qg - c) * (-1.0 / tau_effs[t])).exp().unsqueeze(1);  // data side: psi(x_j) exp(c / tau)
      // w_ij = psi(x_i).psi(x_j) with j != i written out: the same sums as s_n, S_n minus the self term
      // m_i = psi(x_i).psi(x_i), without subtracting m_i from a sum it dominates when the samples are
      // far apart (float32 cancellation), and cheaper for groups smaller than M and D.
      auto w = torch::matmul(pq, pd.t());  // B_g x B_g
      w.fill_diagonal_(0.0);
      own.num.push_back(torch::matmul(w, xg));
      own.den.push_back(w.sum(1));
    }
    if (extra) own = add_shifted(own, rows_of(*extra, idx), tau_effs);
    for (size_t t = 0; t < nt; ++t)
      out[t].index_copy_(0, idx, own.num[t] / own.den[t].clamp_min(config_.eps).unsqueeze(1));
  }
  return out;
}

ProjectedFieldResult ProjectedField::compute(const torch::Tensor& x, const torch::Tensor& labels,
                                             const torch::Tensor& guidance_mass, const SumReducer& reduce) const {
  DRIFTX_CHECK(x.dim() == 2 && x.size(1) == dim_, "projected field: generated features must be B x {}, got {}", dim_,
               shape_str(x.sizes()));
  DRIFTX_CHECK(x.size(0) >= 2, "projected field: need at least 2 generated samples for the repulsion");
  DRIFTX_CHECK(!labels.defined() || labels.numel() == x.size(0),
               "projected field: {} generated samples but {} labels", x.size(0), labels.numel());
  ProjectedFieldResult out;
  torch::Tensor target;
  {
    torch::NoGradGuard no_grad;
    auto xs = x.detach().to(torch::kFloat32) / scale_;
    DRIFTX_CHECK(!guidance_mass.defined() || (guidance_mass.dim() == 1 && guidance_mass.size(0) == x.size(0)),
                 "projected field: guidance mass must have shape [{}], got {}", x.size(0),
                 shape_str(guidance_mass.sizes()));
    std::vector<int64_t> clamped;
    // One pass of distances to the landmarks serves the attraction and, with guidance, the all-data sums.
    std::optional<KernelSums> all_data;
    if (guidance_mass.defined()) all_data.emplace();
    auto attract = divide(kernel_sums(xs, labels, all_data ? &*all_data : nullptr), &clamped);
    std::optional<ExtraNegatives> extra;
    if (all_data) extra = guidance_negatives(*all_data, guidance_mass);
    auto repel = repulsions(xs, labels, extra ? &*extra : nullptr);
    auto drift = torch::zeros_like(xs);
    for (size_t t = 0; t < attract.size(); ++t) {
      auto v = attract[t] - repel[t];
      out.drift_rms.push_back(v.pow(2).mean().sqrt().item<double>());
      drift.add_(normalize_drift(v, DriftNorm::AddEps, config_.eps, reduce));
      out.clamped += clamped[t];
    }
    out.clamped_fraction = static_cast<double>(out.clamped) / static_cast<double>(xs.size(0) * attract.size());
    out.drift = drift;
    target = xs + drift;
  }
  out.target = target;
  out.loss = (x.to(torch::kFloat32) / scale_ - target).pow(2).mean();
  return out;
}

ProjectedField build_projected_field(const torch::Tensor& real, const torch::Tensor& labels,
                                     const torch::Tensor& landmarks, const torch::Tensor& landmark_labels,
                                     ShardLayout layout, std::optional<double> scale, ProjectedFieldConfig config) {
  DRIFTX_CHECK(real.dim() == 2 && landmarks.dim() == 2 && real.size(1) == landmarks.size(1),
               "projected field: real data {} and landmarks {} must be |Y| x D and M x D with the same D",
               shape_str(real.sizes()), shape_str(landmarks.sizes()));
  DRIFTX_CHECK(landmarks.size(0) <= real.size(0),
               "projected field: {} landmarks but only {} real samples: M must be <= |Y|", landmarks.size(0), real.size(0));
  require_finite(real, "projected field real data");
  if (labels.defined() && layout.classes > 1) {
    auto counts = torch::bincount(labels.to(torch::kLong).reshape({-1}), {}, layout.classes);
    DRIFTX_CHECK(counts.numel() == layout.classes, "projected field: labels exceed {} classes", layout.classes);
    for (int64_t c = 0; c < layout.classes; ++c)
      DRIFTX_CHECK(counts[c].item<int64_t>() > 0, "projected field: class {} has no real samples; every class 0..{} needs data",
                   c, layout.classes - 1);
  }
  const double S = scale ? *scale : projected_feature_scale(real, landmarks, config.chunk);
  ProjectedField field(landmarks, landmark_labels, layout, S, std::move(config));
  field.add_data(real, labels);
  return field;
}

std::vector<torch::Tensor> exact_attractions(const torch::Tensor& xs, const torch::Tensor& real_scaled,
                                             const std::vector<double>& tau_effs, const torch::Tensor& labels,
                                             const torch::Tensor& real_labels, int64_t chunk) {
  torch::NoGradGuard no_grad;
  const int64_t B = xs.size(0), D = xs.size(1);
  const bool per_class = labels.defined();
  DRIFTX_CHECK(!per_class || (real_labels.defined() && real_labels.numel() == real_scaled.size(0)),
               "exact attraction: class-conditional queries need one label per real sample");
  auto x = xs.to(torch::kFloat32);
  const size_t nt = tau_effs.size();
  const float inf = std::numeric_limits<float>::infinity();
  // Running minimum distance per query: the ratio is invariant to a common factor exp(dmin / tau), so
  // rescaling keeps each query's largest weight at 1 (no underflow far from the data). Kernel work is
  // float32; only the B x D accumulators are float64.
  auto dmin = torch::full({B}, inf, x.options());
  const auto f64 = x.options().dtype(torch::kFloat64);
  std::vector<torch::Tensor> num(nt), den(nt);
  for (size_t t = 0; t < nt; ++t) num[t] = torch::zeros({B, D}, f64), den[t] = torch::zeros({B}, f64);
  auto qlab = per_class ? labels.to(x.device(), torch::kLong).reshape({-1, 1}) : torch::Tensor();
  for (int64_t start = 0; start < real_scaled.size(0); start += chunk) {
    const int64_t n = std::min(chunk, real_scaled.size(0) - start);
    auto y = real_scaled.narrow(0, start, n).to(x.device(), torch::kFloat32);
    auto dist = euclidean_distances(x, y);  // B x n
    if (per_class)
      dist.masked_fill_((qlab != real_labels.narrow(0, start, n).to(x.device(), torch::kLong).reshape({1, -1})), inf);
    auto new_min = torch::minimum(dmin, std::get<0>(dist.min(1)));
    auto ref = torch::where(torch::isinf(new_min), torch::zeros_like(new_min), new_min);
    auto shifted = dist.sub_(ref.unsqueeze(1));  // >= 0 where finite
    for (size_t t = 0; t < nt; ++t) {
      const double inv_tau = -1.0 / tau_effs[t];
      auto rescale = torch::where(torch::isinf(dmin), torch::zeros_like(dmin), ((dmin - ref) * inv_tau).exp());
      auto K = shifted * inv_tau;
      K.exp_();
      num[t].mul_(rescale.unsqueeze(1).to(torch::kFloat64)).add_(torch::matmul(K, y).to(torch::kFloat64));
      den[t].mul_(rescale.to(torch::kFloat64)).add_(K.sum(1).to(torch::kFloat64));
    }
    dmin = new_min;
  }
  std::vector<torch::Tensor> out(nt);
  for (size_t t = 0; t < nt; ++t) {
    DRIFTX_CHECK(den[t].min().item<double>() > 0, "exact attraction: a query has no real sample of its class");
    out[t] = (num[t] / den[t].unsqueeze(1)).to(torch::kFloat32);
  }
  return out;
}

std::vector<torch::Tensor> exact_repulsions(const torch::Tensor& xs, const torch::Tensor& labels,
                                            const std::vector<double>& tau_effs, double eps,
                                            const ExtraNegatives* extra, bool batched) {
  torch::NoGradGuard no_grad;
  auto x = xs.to(torch::kFloat32);
  DRIFTX_CHECK(!extra || (extra->num.size() == tau_effs.size() && extra->den.size() == tau_effs.size()),
               "exact repulsion: extra negatives must give one numerator and denominator per temperature");
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<torch::Tensor> out;
  if (const auto blocks = batched ? class_blocks(labels) : std::nullopt) {
    // The groups are equal contiguous blocks: the loop below as one batched product (G x n x n).
    const int64_t G = static_cast<int64_t>(blocks->classes.size()), n = blocks->size, D = x.size(1);
    auto xb = x.reshape({G, n, D});
    auto dist = euclidean_distances(xb, xb);
    dist.diagonal(0, 1, 2).fill_(inf);
    auto shift = std::get<0>(dist.min(2));  // G x n; +inf for blocks of one sample
    auto shifted = dist.sub_(torch::where(torch::isinf(shift), torch::zeros_like(shift), shift).unsqueeze(2));
    ShiftedSums own;
    own.shift = shift.reshape({-1});
    for (size_t t = 0; t < tau_effs.size(); ++t) {
      auto K = (shifted * (-1.0 / tau_effs[t])).exp_();
      own.num.push_back(torch::bmm(K, xb).view({-1, D}));
      own.den.push_back(K.sum(2).view({-1}));
    }
    if (extra) own = add_shifted(own, *extra, tau_effs);
    for (size_t t = 0; t < tau_effs.size(); ++t) out.push_back(own.num[t] / own.den[t].clamp_min(eps).unsqueeze(1));
    return out;
  }
  auto groups = query_groups(labels, x);
  for (size_t t = 0; t < tau_effs.size(); ++t) out.push_back(torch::zeros_like(x));
  for (const auto& [g, idx] : groups) {
    const bool all = groups.size() == 1;
    auto xg = all ? x : x.index_select(0, idx);
    auto dist = euclidean_distances(xg, xg);
    dist.fill_diagonal_(inf);  // j != i: no self term in the sums or in the shift
    ShiftedSums own;
    own.shift = std::get<0>(dist.min(1));  // +inf for a group of one sample (empty sums)
    auto shifted = dist - torch::where(torch::isinf(own.shift), torch::zeros_like(own.shift), own.shift).unsqueeze(1);
    for (size_t t = 0; t < tau_effs.size(); ++t) {
      auto K = (shifted * (-1.0 / tau_effs[t])).exp_();  // row max 1
      own.num.push_back(torch::matmul(K, xg));
      own.den.push_back(K.sum(1));
    }
    if (extra) own = add_shifted(own, all ? *extra : rows_of(*extra, idx), tau_effs);
    for (size_t t = 0; t < tau_effs.size(); ++t) {
      auto r = own.num[t] / own.den[t].clamp_min(eps).unsqueeze(1);
      if (all) out[t] = r; else out[t].index_copy_(0, idx, r);
    }
  }
  return out;
}

std::string tensor_fingerprint(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU).contiguous();
  uLong crc = crc32(0L, Z_NULL, 0);
  const std::string shape = shape_str(c.sizes()) + std::string(c.dtype().name());
  crc = crc32(crc, reinterpret_cast<const Bytef*>(shape.data()), shape.size());
  const auto* p = static_cast<const Bytef*>(c.data_ptr());
  size_t left = c.numel() * c.element_size();
  while (left > 0) {
    const uInt n = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    crc = crc32(crc, p, n);
    p += n, left -= n;
  }
  return fmt::format("{:08x}-{}", crc, c.numel());
}

}  // namespace driftx
