// The DriftXpress projected RKHS field (Falahati et al. 2026; SPEC §3). The exact attraction over the
// whole real set, sum_y k(x,y) y / sum_y k(x,y), is replaced by a rank-M Nystrom factorisation whose
// sums over the real data are cached once (DataSummary). This file holds the map, the summaries, the
// field, and the exact full-data attraction it is measured against.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "driftx/kernel.h"

namespace driftx {

// psi(x) = k(x, U) Amap with Amap = (W + ridge I)^(-1/2), W = k(U, U), for one temperature.
// Coordinates are already divided by the feature scale S. The decomposition runs in float64.
class NystromMap {
 public:
  // landmarks: M x D (scaled coordinates); tau_eff = tau * sqrt(D).
  NystromMap(const torch::Tensor& landmarks, double tau_eff, double ridge);

  torch::Tensor kernel(const torch::Tensor& x) const;    // B x M: k(x, U), in x's dtype
  torch::Tensor features(const torch::Tensor& x) const;  // B x M: psi(x)

  const torch::Tensor& landmarks() const { return landmarks_; }
  const torch::Tensor& amap() const { return amap_; }            // M x M, float64
  const torch::Tensor& inverse() const { return inverse_; }      // Amap^2 = (W + ridge I)^-1, float64
  double tau_eff() const { return tau_eff_; }
  double condition_number() const { return condition_; }        // of W + ridge I
  int64_t clamped_eigenvalues() const { return clamped_; }       // eigenvalues raised to 1e-8

 private:
  torch::Tensor landmarks_, amap_, inverse_;
  double tau_eff_ = 0, condition_ = 0;
  int64_t clamped_ = 0;
};

enum class Repulsion { Exact, Projected };
Repulsion parse_repulsion(const std::string& name);  // "exact" | "projected"

// How class-conditional queries meet their class's summaries and repel within their class. Loop: one
// product per class present. Batched: when the queries form equal, contiguous blocks of distinct classes
// (the trainer's class-major batches), one batched product over all blocks; other layouts loop. Auto:
// Batched off the CPU, where kernel launches and syncs dominate a step (3x fewer on a GPU); Loop on the
// CPU, where the per-class products are as fast and the figures in BENCHMARKS.md were measured.
enum class ClassBatching { Auto, Loop, Batched };

struct ProjectedFieldConfig {
  std::vector<double> temperatures{0.02, 0.05, 0.2};
  double ridge = 1e-4;
  double eps = 1e-8;
  Repulsion repulsion = Repulsion::Exact;
  int64_t chunk = 4096;  // real samples per streamed chunk when summarising
  ClassBatching class_batching = ClassBatching::Auto;
  // Performance only: the attraction streams over blocks of this many landmarks (per shard), with
  // each query's shift kept as a running minimum (online rescaling, like a streaming log-sum-exp), so
  // its working set is B x landmark_block instead of B x M. 0: one block of all landmarks. Results
  // do not depend on it beyond float32 rounding.
  int64_t landmark_block = 1024;
  // Query-time products of the attraction (kernel values x folded summaries): float32 or bf16.
  ProductPrecision products = ProductPrecision::Float32;
};

// Feature scale S (SPEC §3): mean distance between the real features (|Y| x D) and up to 256 of the
// landmarks (indices round(linspace(0, M-1, 256))), divided by sqrt(D). Streamed in chunks.
double projected_feature_scale(const torch::Tensor& real, const torch::Tensor& landmarks, int64_t chunk = 4096);

// How classes map to landmark shards (block-diagonal Nystrom). shards = 1: one shared map.
// Class c belongs to shard floor(c * shards / classes): contiguous, balanced blocks.
struct ShardLayout {
  int64_t classes = 1;
  int64_t shards = 1;
  int64_t shard_of_class(int64_t c) const { return c * shards / classes; }
  // Shard k holds the classes [first_class(k), first_class(k + 1)): the smallest c with c * shards / classes >= k.
  int64_t first_class(int64_t k) const { return (k * classes + shards - 1) / shards; }
  int64_t classes_in(int64_t k) const { return first_class(k + 1) - first_class(k); }
  torch::Tensor shard_of_classes(const torch::Tensor& labels) const {  // the same rule, element-wise
    return (labels * shards).div(classes, "floor");
  }
};

// Cached sums over real data for one shard and one temperature, kept in the map-free form
// ksum[c] = sum_{y in c} k(y, U) (M) and kysum[c] = sum_{y in c} k(y, U)^T y (M x D), float64.
// The spec's s = Amap ksum and Sy = Amap kysum follow from them; keeping raw kernel sums makes them
// additive across data shards before any map is applied.
// A shard's summaries hold rows for its own classes only (C_k = ShardLayout::classes_in(k) rows, row
// c - first_class(k) for class c): a shard's map never sees the other classes' data.
struct DataSummary {
  torch::Tensor ksum;    // C_k x M_k, float64
  torch::Tensor kysum;   // C_k x M_k x D, float64
  torch::Tensor counts;  // C_k, int64: real samples summarised per class

  void add(const DataSummary& other);  // other must have the same shapes
};

// Kernel sums of one ratio, per temperature t, stored shifted so that nothing underflows (SPEC §3,
// "Numerical stability"): num[t] (B x D) and den[t] (B) hold the true sums times exp(shift_i / tau_eff_t),
// shift (B) a distance per query (undefined: 0). A ratio num/den is unchanged by the shift; sums with
// different shifts are added with add_shifted.
struct ShiftedSums {
  std::vector<torch::Tensor> num, den;
  torch::Tensor shift;
};

// a + b at the common shift min(shift_a, shift_b) per query: each side is multiplied by
// exp(-(shift - common) / tau_eff) <= 1, so the dominant side keeps its scale and nothing overflows.
// A side whose shift is +inf (an empty sum) contributes 0.
ShiftedSums add_shifted(const ShiftedSums& a, const ShiftedSums& b, const std::vector<double>& tau_effs);

// Extra negatives for a repulsion (guidance): per temperature, num (sum of weight * k(x_i, y) y) and
// den (sum of weight * k(x_i, y)), at their own shift.
using ExtraNegatives = ShiftedSums;

struct ProjectedFieldResult {
  torch::Tensor drift;   // B x D: sum_tau normalised (b+ - b-), scaled coordinates, no grad
  torch::Tensor target;  // B x D: x / S + drift, no grad
  torch::Tensor loss;    // scalar mean((x / S - target)^2); gradient flows only into x
  int64_t clamped = 0;   // (query, temperature) pairs whose attraction denominator was clamped at eps
  double clamped_fraction = 0;        // clamped / (B * temperatures)
  std::vector<double> drift_rms;      // per temperature, before normalisation
};

class ProjectedField {
 public:
  // landmarks: M x D raw features (real samples); landmark_labels: M int64 (needed when shards > 1,
  // to assign each landmark to its class's shard); scale: S (SPEC §3).
  ProjectedField(const torch::Tensor& landmarks, const torch::Tensor& landmark_labels, ShardLayout layout,
                 double scale, ProjectedFieldConfig config = {});

  // Streams real features (n x D raw) with labels (n int64, or undefined when classes == 1) into the
  // summaries. Call any number of times (data shards); never builds an n x |Y| matrix.
  void add_data(const torch::Tensor& real, const torch::Tensor& labels);
  // Adds another field's summaries (e.g. from another process); throws unless compatible.
  void merge_from(const ProjectedField& other);
  void check_compatible(const ProjectedField& other) const;

  // Field for generated features x (B x D raw, may require grad). labels (B int64) selects
  // class-conditional attraction (class c uses class c's summaries) and groups the repulsion by class;
  // undefined: unconditional attraction over all data, one repulsion group. reduce (kernel.h): when
  // the batch is split across processes, sums the drift normalisation's statistics over all of them.
  // guidance_mass (B float, optional; CFG, SPEC §2): the total weight (alpha - 1)(N - 1) that unconditional
  // real samples carry as extra negatives in query i's repulsion, in units of one generated sample. The
  // standard field draws U real samples with weight w = mass / U each; here their expectation enters
  // instead, from the cached unconditional summaries: mass / |Y| * sum_y k(x, y) (y, 1) (Nystrom).
  ProjectedFieldResult compute(const torch::Tensor& x, const torch::Tensor& labels = {},
                               const torch::Tensor& guidance_mass = {}, const SumReducer& reduce = {}) const;

  // Pieces in scaled coordinates (xs = x / S), one tensor (B x D) per temperature. Distances to the
  // landmarks are computed once and shared by the temperatures. `clamped` (if given) receives, per
  // temperature, the number of queries whose attraction denominator was clamped at eps.
  // `touched` (if given) receives, per query, how many landmarks it was compared with (all M, or its own
  // shard's M_k for a class-conditional query of a sharded field).
  std::vector<torch::Tensor> attractions(const torch::Tensor& xs, const torch::Tensor& labels,
                                         std::vector<int64_t>* clamped = nullptr, torch::Tensor* touched = nullptr) const;
  // extra (optional): kernel mass added to each query's repulsion numerator and denominator (guidance).
  std::vector<torch::Tensor> repulsions(const torch::Tensor& xs, const torch::Tensor& labels,
                                        const ExtraNegatives* extra = nullptr) const;

  // Changes the query step's performance options (ProjectedFieldConfig::landmark_block, products)
  // without rebuilding maps or summaries; the folded copies are rebuilt on the next query.
  void set_query_options(int64_t landmark_block, ProductPrecision products);

  double scale() const { return scale_; }
  int64_t dim() const { return dim_; }
  int64_t num_landmarks() const { return num_landmarks_; }
  const ShardLayout& layout() const { return layout_; }
  const ProjectedFieldConfig& config() const { return config_; }
  const NystromMap& map(int64_t shard, size_t t) const { return maps_[shard][t]; }
  const DataSummary& summary(int64_t shard, size_t t) const { return summaries_[shard][t]; }
  DataSummary& mutable_summary(int64_t shard, size_t t);  // e.g. to all-reduce in place
  int64_t summarised_samples() const;
  // Memory, bytes: the float64 summaries (ksum, kysum); what fold() keeps on the queries' device (folded [num | den]
  // per shard and temperature, its bfloat16 copy with ProductPrecision::BFloat16, the Amap copies, the
  // scaled landmarks), from the shapes, so the same before and after the first query.
  int64_t summary_bytes() const;
  int64_t folded_bytes() const;
  double max_condition_number() const;

  // Cache: header (shapes, temperatures, ridge, scale, landmark strategy, fingerprints) + summaries.
  void save(const std::string& path, const std::string& landmark_strategy, const std::string& data_fingerprint) const;
  // Loads summaries into this field (built with the same landmarks/config); throws with the mismatching
  // field named when the cache was made with another configuration or data.
  void load(const std::string& path, const std::string& landmark_strategy, const std::string& data_fingerprint);

 private:
  // Per temperature: numerator B x D and denominator B of the Nystrom attraction, before the division,
  // shifted by each query's smallest distance to the landmarks it was computed against.
  using KernelSums = ShiftedSums;
  // The sums for each query's class (labels) or over all data (undefined labels); `all_data`, when
  // given, also receives the all-data sums from the same kernel values (guidance), at no extra distances.
  // Class-conditional queries of a sharded field meet only their own shard's landmarks (the other
  // shards hold none of their class's data) and are shifted by the smallest distance to them; with
  // `all_data` they meet every shard (the all-data sums need them) and both sums share that shift.
  // `touched` (optional) receives, per query, the number of landmarks it was compared with.
  KernelSums kernel_sums(const torch::Tensor& xs, const torch::Tensor& labels, KernelSums* all_data = nullptr,
                         torch::Tensor* touched = nullptr) const;
  // num / max(den, eps), counting clamped denominators per temperature.
  std::vector<torch::Tensor> divide(const KernelSums& sums, std::vector<int64_t>* clamped) const;
  // The guidance term for `repulsions`: per temperature, mass_i / |Y| times the all-data Nystrom sums
  // sum_y k(x_i, y) y and sum_y k(x_i, y); a query whose estimated sum is <= 0 gets no extra mass.
  ExtraNegatives guidance_negatives(const KernelSums& all_data, const torch::Tensor& mass) const;
  // Lazily, on the queries' device (SPEC §3 folded form): Amap-folded summaries, the scaled landmarks and
  // float32 Amap copies for the query-time products. Built in float64 on the CPU, then moved once: a
  // field queried with CUDA tensors keeps everything it reads per step on that device.
  void fold(const torch::Device& device) const;
  bool batch_classes(const torch::Tensor& x) const;  // class_batching resolved for queries on x's device
  // Rows of a fold after the shard's class rows: its all-data row, and with shards a zero row.
  int64_t fold_extra_rows() const { return layout_.shards > 1 ? 2 : 1; }
  // Row of class c in shard k's fold: its own row, or (a class of another shard) the zero row.
  int64_t fold_row(int64_t c, int64_t k) const {
    return layout_.shard_of_class(c) == k ? c - layout_.first_class(k) : layout_.classes_in(k) + 1;
  }

  ProjectedFieldConfig config_;
  ShardLayout layout_;
  double scale_ = 1;
  int64_t dim_ = 0, num_landmarks_ = 0;
  std::vector<torch::Tensor> shard_landmarks_;                // per shard: M_k x D scaled
  std::vector<std::vector<NystromMap>> maps_;                 // [shard][temperature]
  std::vector<std::vector<DataSummary>> summaries_;           // [shard][temperature]
  mutable bool folded_ = false;
  mutable torch::Device fold_device_{torch::kCPU};
  // [shard][temperature]: folded numerator and denominator side by side, (C_k + fold_extra_rows()) x M_k x
  // (D+1), float32 (column D: the denominator, so one product gives both); rows 0..C_k-1 the shard's
  // classes, row C_k the shard's unconditional sums, row C_k + 1 (sharded) zeros. On
  // fold_device_, with the landmarks and Amap copies below. fold_low_: the same in bfloat16, when the
  // products run in bf16.
  mutable std::vector<std::vector<torch::Tensor>> fold_, fold_low_, query_amap_;
  mutable std::vector<torch::Tensor> query_landmarks_;  // per shard: M_k x D scaled, float32
  // Sharded fields whose shards hold equally many landmarks (M_k = M / shards): the same tensors stacked,
  // so that class blocks of several shards meet their own shard's landmarks in one batched product
  // (shard_blocks). fold_, fold_low_ and query_landmarks_ are then views into these (no second copy).
  // stacked_landmarks_: shards x M_k x D; stacked_fold_[t] (stacked_fold_low_[t]): every shard's fold
  // rows one after another, shard k's from fold_offset_[k]. Undefined / empty otherwise.
  mutable torch::Tensor stacked_landmarks_;
  mutable std::vector<torch::Tensor> stacked_fold_, stacked_fold_low_;
  mutable std::vector<int64_t> fold_offset_;
  // kernel_sums for class-conditional queries in equal contiguous class blocks when the landmarks are
  // stacked: block g meets only its class's shard (shift: its smallest distance to it), all blocks in
  // one batched distance product and one batched product per temperature. The same sums as the
  // per-shard query sets, in another order.
  KernelSums shard_blocks(const torch::Tensor& x, const std::vector<int64_t>& block_classes, torch::Tensor* touched) const;
};

// Builds a projected field over a whole real set in one call: checks M <= |Y|, that every class
// 0..classes-1 has real samples, computes S (SPEC §3) unless `scale` is given, and summarises `real`.
// real: |Y| x D; labels: |Y| int64 or undefined; landmarks: M x D; landmark_labels: M (sharding only).
ProjectedField build_projected_field(const torch::Tensor& real, const torch::Tensor& labels,
                                     const torch::Tensor& landmarks, const torch::Tensor& landmark_labels,
                                     ShardLayout layout, std::optional<double> scale, ProjectedFieldConfig config);

// The exact attraction over a full real set (scaled coordinates), one result per tau_eff:
// b+(x) = sum_y k(x,y) y / sum_y k(x,y), streamed over chunks of Y (memory B x chunk) with a running
// minimum distance so far-away queries do not underflow. labels (B) with real_labels (|Y|): each query
// averages over the real samples of its own class.
std::vector<torch::Tensor> exact_attractions(const torch::Tensor& xs, const torch::Tensor& real_scaled,
                                             const std::vector<double>& tau_effs, const torch::Tensor& labels = {},
                                             const torch::Tensor& real_labels = {}, int64_t chunk = 4096);

// Exact kernel-mean repulsion within groups of equal label (SPEC §3), one result per tau_eff:
// sum_{j != i} k(x_i,x_j) x_j / max(sum_{j != i} k(x_i,x_j), eps). labels undefined: one group.
// Each row is shifted by its smallest distance to the other samples of its group, so the largest
// kernel value is 1 and the eps clamp never meets underflow. extra (optional) adds kernel mass of
// outside negatives to each query's numerator and denominator, brought to a common shift first.
// batched: use one batched product when the labels (on the CPU) form equal contiguous blocks of
// distinct classes (ClassBatching); the same sums, in another order.
std::vector<torch::Tensor> exact_repulsions(const torch::Tensor& xs, const torch::Tensor& labels,
                                            const std::vector<double>& tau_effs, double eps = 1e-8,
                                            const ExtraNegatives* extra = nullptr, bool batched = false);

// A fingerprint of a tensor's shape and bytes (CRC-32 based, hex), for cache headers.
std::string tensor_fingerprint(const torch::Tensor& t);

}  // namespace driftx
