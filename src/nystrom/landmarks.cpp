// Landmark selection (SPEC §4). Every strategy returns rows of the real data, is seeded, and keeps
// memory bounded: distance blocks are computed a chunk of rows at a time, never a full n x M matrix.
#include "driftx/landmarks.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <random>
#include <utility>

#include <fmt/ranges.h>

#include "driftx/error.h"
#include "driftx/kernel.h"

namespace driftx {
namespace {

const std::vector<std::pair<LandmarkStrategy, std::string>>& strategy_table() {
  static const std::vector<std::pair<LandmarkStrategy, std::string>> table = {
      {LandmarkStrategy::RandomGlobal, "random_global"},
      {LandmarkStrategy::RandomPerClass, "random_per_class"},
      {LandmarkStrategy::KMeansGlobal, "kmeans_global"},
      {LandmarkStrategy::KMeansPerClass, "kmeans_per_class"},
      {LandmarkStrategy::KCenter, "kcenter"},
      {LandmarkStrategy::FacilityLocation, "facility_location"},
      {LandmarkStrategy::DensityWeightedKCenter, "density_weighted_kcenter"},
  };
  return table;
}

constexpr double kInf = std::numeric_limits<double>::infinity();

// Rows per distance chunk: a chunk x m float32 block stays <= 64 MiB, and at most 4096 rows.
int64_t chunk_rows(int64_t m) {
  return std::clamp<int64_t>((int64_t{1} << 24) / std::max<int64_t>(m, 1), 1, 4096);
}

// splitmix64: independent seeds for the sub-streams of one call (per class, candidates vs clients).
uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The first k entries of a seeded permutation of 0..n-1 (a local generator: the global one is untouched).
torch::Tensor random_subset(int64_t n, int64_t k, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return torch::randperm(n, gen, torch::kLong).slice(0, 0, k);
}

// Distances from every row of x to one point at a time, for the sequential greedy loops (k-means++,
// k-center) that take one point per step. Same formula and floor as euclidean_distances (its default
// min_sq), with ||x_i||^2 computed once: calling euclidean_distances(x, p) each step recomputes x * x,
// an n x D temporary, which made a step ~7x slower at n = 60000, D = 784.
class PointDistances {
 public:
  explicit PointDistances(const torch::Tensor& x) : x_(x), sq_norms_((x * x).sum(1)) {}
  torch::Tensor to(int64_t row) const {
    auto p = x_[row];
    return torch::mv(x_, p).mul_(-2.0).add_(sq_norms_).add_(sq_norms_[row]).clamp_min_(1e-8).sqrt_();
  }

 private:
  torch::Tensor x_, sq_norms_;
};

torch::Tensor to_index_tensor(const std::vector<int64_t>& v) {
  return torch::tensor(v, torch::kLong);
}

torch::Tensor random_landmarks(const torch::Tensor& x, int64_t m, uint64_t seed) {
  return random_subset(x.size(0), m, seed);
}

// Each centre becomes the real sample nearest to it; centres are served in order and a sample is used
// once (if the nearest is taken, the next nearest). Blocks of centres x all samples stay <= 64 MiB.
torch::Tensor snap_to_samples(const torch::Tensor& x, const torch::Tensor& centres) {
  const int64_t n = x.size(0), m = centres.size(0), step = chunk_rows(n);
  const int64_t shortlist = std::min<int64_t>(n, 16);  // enough nearest candidates for almost every centre
  std::vector<char> taken(n, 0);
  std::vector<int64_t> out;
  out.reserve(m);
  for (int64_t s = 0; s < m; s += step) {
    const int64_t e = std::min(m, s + step);
    auto d = euclidean_distances(centres.slice(0, s, e), x);
    auto top = std::get<1>(d.topk(shortlist, 1, /*largest=*/false, /*sorted=*/true)).contiguous();
    auto acc = top.accessor<int64_t, 2>();
    for (int64_t r = 0; r < e - s; ++r) {
      int64_t pick = -1;
      for (int64_t k = 0; k < shortlist && pick < 0; ++k)
        if (!taken[acc[r][k]]) pick = acc[r][k];
      if (pick < 0) {  // whole shortlist taken (many duplicates): scan the full row
        auto row = d[r].clone();
        row.index_fill_(0, to_index_tensor(out), kInf);
        pick = row.argmin().item<int64_t>();
      }
      taken[pick] = 1;
      out.push_back(pick);
    }
  }
  return to_index_tensor(out);
}

// k-means++ initialisation (each next centre a sample drawn with probability proportional to its squared
// distance to the nearest chosen centre), Lloyd iterations, then snapping to distinct real samples.
torch::Tensor kmeans_landmarks(const torch::Tensor& x, int64_t m, int iterations, uint64_t seed) {
  const int64_t n = x.size(0);
  std::mt19937_64 rng(seed);  // std::mt19937_64's sequence is fixed by the standard: portable draws
  auto uniform = [&rng] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };

  std::vector<int64_t> init = {std::min<int64_t>(n - 1, static_cast<int64_t>(uniform() * n))};
  const PointDistances distances(x);
  auto d2 = torch::full({n}, kInf, torch::kFloat64);
  while (true) {
    const int64_t last = init.back();
    d2 = torch::minimum(d2, distances.to(last).to(torch::kFloat64).pow(2));
    d2[last] = 0.0;  // exact zero: a chosen sample is never drawn again (the distance clamp is > 0)
    if (static_cast<int64_t>(init.size()) == m) break;
    auto acc = d2.accessor<double, 1>();
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += acc[i];
    const double target = uniform() * total;
    int64_t pick = -1, last_positive = -1;
    double cum = 0;
    for (int64_t i = 0; i < n && pick < 0; ++i) {
      if (acc[i] > 0) last_positive = i;
      cum += acc[i];
      if (cum > target && acc[i] > 0) pick = i;
    }
    init.push_back(pick >= 0 ? pick : last_positive);  // fallback only on rounding at the very end
  }

  auto centres = x.index_select(0, to_index_tensor(init));
  torch::Tensor assign;
  for (int it = 0; it < iterations; ++it) {
    auto next = nearest_index(x, centres);
    if (assign.defined() && next.equal(assign)) break;  // converged: centres would not move
    assign = next;
    auto sums = torch::zeros_like(centres).index_add_(0, assign, x);
    auto counts = torch::bincount(assign, {}, m).to(torch::kFloat32).unsqueeze(1);
    // An empty cluster keeps its previous centre rather than collapsing to the origin.
    centres = torch::where(counts > 0, sums / counts.clamp_min(1), centres);
  }
  return snap_to_samples(x, centres);
}

// Greedy farthest-point selection: start at a seeded random sample, then repeatedly take the sample
// maximising weight_i * (distance to its nearest selected landmark); weight undefined = plain k-center.
// One distance vector per step: O(n M D) in total, O(n) extra memory.
torch::Tensor farthest_point(const torch::Tensor& x, int64_t m, uint64_t seed, const torch::Tensor& weight) {
  const int64_t n = x.size(0);
  int64_t next = random_subset(n, 1, seed)[0].item<int64_t>();
  const PointDistances distances(x);
  auto nearest = torch::full({n}, kInf, torch::kFloat32);
  std::vector<int64_t> out = {next};
  while (true) {
    nearest = torch::minimum(nearest, distances.to(next));
    nearest[next] = -1.0;  // negative score from now on (min keeps it): never selected twice
    if (static_cast<int64_t>(out.size()) == m) break;
    next = (weight.defined() ? nearest * weight : nearest).argmax().item<int64_t>();
    out.push_back(next);
  }
  return to_index_tensor(out);
}

// kNN density weights for density_weighted_kcenter. The exact rule:
//   r_i       = mean distance from sample i to its k nearest neighbours in a reference set R (all samples
//               when n <= 4096, else a seeded random subset of 4096; i itself is excluded),
//   density_i = 1 / max(r_i, 0.01 * median(r))   (the floor keeps exact duplicates from dominating),
//   weight_i  = density_i / mean(density)        (weights average to 1).
// So the score weight_i * distance-to-nearest-landmark prefers far samples in dense regions over
// isolated outliers, which plain k-center picks first.
torch::Tensor density_weights(const torch::Tensor& x, int64_t k, uint64_t seed) {
  const int64_t n = x.size(0);
  auto ref = n <= 4096 ? torch::arange(n, torch::kLong) : random_subset(n, 4096, seed);
  const int64_t refs = ref.size(0);
  k = std::min(k, refs - 1);
  if (k <= 0) return torch::ones({n}, torch::kFloat32);
  auto position = torch::full({n}, -1, torch::kLong);  // where sample i sits in R, or -1
  position.index_put_({ref}, torch::arange(refs, torch::kLong));
  auto xr = x.index_select(0, ref);
  auto radius = torch::empty({n}, torch::kFloat32);
  const int64_t step = chunk_rows(refs);
  for (int64_t s = 0; s < n; s += step) {
    const int64_t e = std::min(n, s + step);
    auto d = euclidean_distances(x.slice(0, s, e), xr);
    auto pos = position.slice(0, s, e);
    auto self = (pos >= 0).nonzero().squeeze(1);
    d.index_put_({self, pos.index_select(0, self)}, kInf);  // a sample is not its own neighbour
    radius.slice(0, s, e).copy_(std::get<0>(d.topk(k, 1, /*largest=*/false)).mean(1));
  }
  auto density = 1.0 / radius.clamp_min(0.01 * radius.median().item<double>());
  return density / density.mean();
}

// Greedy facility location: choose M of a seeded candidate subset maximising
// sum_clients max_selected k(client, candidate). Lazy greedy (exact, since coverage is monotone
// submodular: a stale gain is an upper bound, so a popped entry whose gain is fresh is the best).
torch::Tensor facility_location(const torch::Tensor& x, int64_t m, int64_t candidates, uint64_t seed) {
  const int64_t n = x.size(0);
  const int64_t c = std::min(n, std::max(candidates, m));
  // At most 4096 clients, fewer when there are many candidates: the similarity matrix stays <= 256 MiB.
  const int64_t cl = std::min({n, int64_t{4096}, std::max<int64_t>(1, (int64_t{1} << 26) / c)});
  auto cand = random_subset(n, c, mix_seed(seed, 1));
  auto xc = x.index_select(0, cand);
  auto xcl = x.index_select(0, random_subset(n, cl, mix_seed(seed, 2)));

  // tau_eff = median pairwise distance among (up to) 256 of the random clients: the data's own scale,
  // so the kernel neither saturates at 1 nor vanishes, and no extra knob is needed.
  double tau = 1.0;
  const int64_t few = std::min<int64_t>(cl, 256);
  if (few >= 2) {
    auto sample = xcl.slice(0, 0, few);
    auto upper = torch::ones({few, few}, torch::kBool).triu(1);
    tau = euclidean_distances(sample, sample).masked_select(upper).median().item<double>();
  }

  auto sim = torch::empty({c, cl}, torch::kFloat32);
  for (int64_t s = 0, step = chunk_rows(cl); s < c; s += step) {
    const int64_t e = std::min(c, s + step);
    sim.slice(0, s, e).copy_(laplace_kernel(xc.slice(0, s, e), xcl, tau));
  }
  const float* data = sim.data_ptr<float>();
  std::vector<double> covered(cl, 0.0);  // max similarity of each client to the selected set
  auto gain = [&](int64_t i) {
    double g = 0;
    for (int64_t j = 0; j < cl; ++j) g += std::max(0.0, data[i * cl + j] - covered[j]);
    return g;
  };
  std::priority_queue<std::pair<double, int64_t>> queue;  // (gain, -index): ties go to the lower index
  std::vector<int64_t> fresh_at(c, 0), out;
  for (int64_t i = 0; i < c; ++i) queue.emplace(gain(i), -i);
  while (static_cast<int64_t>(out.size()) < m) {
    const int64_t i = -queue.top().second;
    queue.pop();
    if (fresh_at[i] == static_cast<int64_t>(out.size())) {
      out.push_back(i);
      for (int64_t j = 0; j < cl; ++j) covered[j] = std::max<double>(covered[j], data[i * cl + j]);
    } else {
      fresh_at[i] = static_cast<int64_t>(out.size());
      queue.emplace(gain(i), -i);
    }
  }
  return cand.index_select(0, to_index_tensor(out));
}

// One strategy on one set of rows (the whole data, or one class), returning row indices into x.
torch::Tensor run_strategy(const torch::Tensor& x, int64_t m, const LandmarkConfig& config, uint64_t seed) {
  switch (config.strategy) {
    case LandmarkStrategy::RandomGlobal:
    case LandmarkStrategy::RandomPerClass:
      return random_landmarks(x, m, seed);
    case LandmarkStrategy::KMeansGlobal:
    case LandmarkStrategy::KMeansPerClass:
      return kmeans_landmarks(x, m, config.kmeans_iterations, seed);
    case LandmarkStrategy::KCenter:
      return farthest_point(x, m, seed, torch::Tensor());
    case LandmarkStrategy::FacilityLocation:
      return facility_location(x, m, config.candidates, seed);
    case LandmarkStrategy::DensityWeightedKCenter:
      return farthest_point(x, m, seed, density_weights(x, config.density_k, mix_seed(seed, 3)));
  }
  fail("landmarks: unhandled strategy");
}

bool is_per_class(LandmarkStrategy s) {
  return s == LandmarkStrategy::RandomPerClass || s == LandmarkStrategy::KMeansPerClass;
}

// Validates labels (one non-negative integer per sample, every class 0..max present) and returns the
// sample indices of each class.
std::vector<torch::Tensor> class_members(const torch::Tensor& labels, int64_t n) {
  DRIFTX_CHECK(labels.dim() == 1 && labels.size(0) == n,
               "landmarks: labels have {} entries ({} dims) but features have {} rows (pass one label per sample)",
               labels.numel(), labels.dim(), n);
  DRIFTX_CHECK(!labels.is_floating_point() && !labels.is_complex(),
               "landmarks: labels must be integer class ids (got a floating-point tensor)");
  auto l = labels.to(torch::kCPU, torch::kLong);
  if (n == 0) return {};
  DRIFTX_CHECK(l.min().item<int64_t>() >= 0, "landmarks: labels must be >= 0 (relabel classes to 0..C-1)");
  const int64_t classes = l.max().item<int64_t>() + 1;
  auto counts = torch::bincount(l, {}, classes);
  auto empty = (counts == 0).nonzero();
  DRIFTX_CHECK(empty.numel() == 0,
               "landmarks: class {} has no samples among labels 0..{} (relabel classes to 0..C-1 without gaps)",
               empty.numel() ? empty[0][0].item<int64_t>() : 0, classes - 1);
  std::vector<torch::Tensor> members;
  for (int64_t c = 0; c < classes; ++c) members.push_back((l == c).nonzero().squeeze(1));
  return members;
}

}  // namespace

torch::Tensor nearest_index(const torch::Tensor& x, const torch::Tensor& y) {
  const int64_t n = x.size(0), step = chunk_rows(y.size(0));
  auto index = torch::empty({n}, torch::kLong);
  for (int64_t s = 0; s < n; s += step) {
    const int64_t e = std::min(n, s + step);
    index.slice(0, s, e).copy_(euclidean_distances(x.slice(0, s, e), y).argmin(1));
  }
  return index;
}

LandmarkStrategy parse_landmark_strategy(const std::string& name) {
  for (const auto& [strategy, text] : strategy_table())
    if (text == name) return strategy;
  fail("unknown landmark strategy '{}' (expected one of: {})", name, fmt::join(landmark_strategy_names(), ", "));
}

std::string to_string(LandmarkStrategy strategy) {
  for (const auto& [s, text] : strategy_table())
    if (s == strategy) return text;
  fail("landmarks: unknown strategy value {}", static_cast<int>(strategy));
}

std::vector<std::string> landmark_strategy_names() {
  std::vector<std::string> names;
  for (const auto& entry : strategy_table()) names.push_back(entry.second);
  return names;
}

std::vector<int64_t> split_class_budget(const std::vector<int64_t>& class_sizes, int64_t total) {
  int64_t available = 0;
  for (int64_t size : class_sizes) available += size;
  DRIFTX_CHECK(total >= 0, "landmarks: budget must be >= 0, got {}", total);
  DRIFTX_CHECK(total <= available, "landmarks: budget {} exceeds the {} labelled samples (lower total or per_class)",
               total, available);
  std::vector<int64_t> out(class_sizes.size(), 0);
  std::vector<size_t> open(class_sizes.size());
  for (size_t i = 0; i < open.size(); ++i) open[i] = i;
  int64_t remaining = total;
  // Water filling: classes no larger than the even share give everything they have; repeat on the rest
  // (their share only grows), then split evenly with the +1 extras going to the lowest class ids.
  while (!open.empty()) {
    const int64_t share = remaining / static_cast<int64_t>(open.size());
    std::vector<size_t> larger;
    for (size_t i : open) {
      if (class_sizes[i] <= share) {
        out[i] = class_sizes[i];
        remaining -= class_sizes[i];
      } else {
        larger.push_back(i);
      }
    }
    if (larger.size() == open.size()) {
      const int64_t extra = remaining % static_cast<int64_t>(open.size());
      for (size_t r = 0; r < open.size(); ++r) out[open[r]] = share + (static_cast<int64_t>(r) < extra ? 1 : 0);
      break;
    }
    open = std::move(larger);
  }
  return out;
}

torch::Tensor select_landmarks(const torch::Tensor& features, const torch::Tensor& labels,
                               const LandmarkConfig& config) {
  DRIFTX_CHECK(features.defined() && features.dim() == 2 && features.is_floating_point(),
               "landmarks: features must be a floating-point n x D matrix (got {} dimensions)",
               features.defined() ? features.dim() : 0);
  auto x = features.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = x.size(0);
  DRIFTX_CHECK(torch::isfinite(x).all().item<bool>(),
               "landmarks: features contain NaN or Inf (drop or repair those samples first)");
  const bool per_class = is_per_class(config.strategy);
  DRIFTX_CHECK(labels.defined() || (!per_class && config.per_class <= 0),
               "landmarks: {} needs labels (pass labels, or use a global strategy with a total budget)",
               per_class ? "strategy " + to_string(config.strategy) : std::string("a per_class budget"));
  std::vector<torch::Tensor> members;
  if (labels.defined()) members = class_members(labels, n);
  const int64_t m = config.per_class > 0 ? config.per_class * static_cast<int64_t>(members.size()) : config.total;
  DRIFTX_CHECK(m > 0, "landmarks: the budget must be positive, got {} (set total or per_class > 0)", m);
  DRIFTX_CHECK(m <= n, "landmarks: budget {} exceeds the {} samples (lower total or per_class)", m, n);
  DRIFTX_CHECK(config.kmeans_iterations >= 0, "landmarks: kmeans_iterations must be >= 0, got {}",
               config.kmeans_iterations);
  DRIFTX_CHECK(config.candidates > 0, "landmarks: candidates must be positive, got {}", config.candidates);
  DRIFTX_CHECK(config.density_k > 0, "landmarks: density_k must be positive, got {}", config.density_k);

  if (!per_class) return run_strategy(x, m, config, config.seed);
  std::vector<int64_t> sizes;
  for (const auto& idx : members) sizes.push_back(idx.size(0));
  const auto budgets = split_class_budget(sizes, m);
  std::vector<torch::Tensor> parts;
  for (size_t c = 0; c < members.size(); ++c) {
    if (budgets[c] == 0) continue;
    auto local = run_strategy(x.index_select(0, members[c]), budgets[c], config, mix_seed(config.seed, c));
    parts.push_back(members[c].index_select(0, local));
  }
  return torch::cat(parts);
}

LandmarkCoverage landmark_coverage(const torch::Tensor& features, const torch::Tensor& landmarks,
                                   double tau_eff, double ridge) {
  DRIFTX_CHECK(features.defined() && landmarks.defined() && features.dim() == 2 && landmarks.dim() == 2 &&
                   features.size(1) == landmarks.size(1) && features.size(0) > 0 && landmarks.size(0) > 0,
               "landmark coverage: features (n x D) and landmarks (M x D) must be non-empty with the same D");
  DRIFTX_CHECK(tau_eff > 0 && std::isfinite(tau_eff), "landmark coverage: tau_eff must be positive, got {}", tau_eff);
  DRIFTX_CHECK(ridge >= 0 && std::isfinite(ridge), "landmark coverage: ridge must be >= 0, got {}", ridge);
  auto x = features.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  auto u = landmarks.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = x.size(0), m = u.size(0), step = chunk_rows(m);

  // The nearest landmark is found in float32; its distance is then recomputed in float64 for that one
  // pair, so small distances do not suffer float32 cancellation. The kernel decreases with distance,
  // so max_j k(y, u_j) is the kernel at the nearest landmark.
  auto dist = torch::empty({n}, torch::kFloat64), kern = torch::empty({n}, torch::kFloat64);
  for (int64_t s = 0; s < n; s += step) {
    const int64_t e = std::min(n, s + step);
    auto xs = x.slice(0, s, e);
    auto idx = euclidean_distances(xs, u).argmin(1);
    auto a = xs.to(torch::kFloat64).unsqueeze(1), b = u.index_select(0, idx).to(torch::kFloat64).unsqueeze(1);
    dist.slice(0, s, e).copy_(euclidean_distances(a, b).flatten());
    kern.slice(0, s, e).copy_(laplace_kernel(a, b, tau_eff).flatten());
  }
  LandmarkCoverage out;
  out.min_distance = dist.min().item<double>();
  out.mean_distance = dist.mean().item<double>();
  out.max_distance = dist.max().item<double>();
  out.mean_max_kernel = kern.mean().item<double>();
  out.min_max_kernel = kern.min().item<double>();

  auto u64 = landmarks.detach().to(torch::kCPU, torch::kFloat64);
  auto w = laplace_kernel(u64, u64, tau_eff) + ridge * torch::eye(m, torch::kFloat64);
  auto eig = torch::linalg_eigvalsh(w);  // ascending
  // The floor keeps a singular W (duplicate landmarks, no ridge) huge but finite: max eig <= M (1 + ridge).
  out.condition_number = eig[-1].item<double>() / std::max(eig[0].item<double>(), 1e-300);
  return out;
}

}  // namespace driftx
