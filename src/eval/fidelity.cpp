#include "driftx/fidelity.h"

#include <algorithm>
#include <chrono>

#include "driftx/error.h"
#include "driftx/kernel.h"
#include "driftx/projected_field.h"
#include "driftx/timing.h"

namespace driftx {


std::vector<FidelityRow> run_fidelity(const torch::Tensor& real, const torch::Tensor& labels,
                                      const torch::Tensor& queries, const torch::Tensor& query_labels,
                                      const FidelityConfig& config,
                                      const std::function<void(const FidelityRow&)>& progress) {
  torch::NoGradGuard no_grad;
  DRIFTX_CHECK(real.dim() == 2 && queries.dim() == 2 && real.size(1) == queries.size(1),
               "fidelity: real {} and queries {} must share D", shape_str(real.sizes()), shape_str(queries.sizes()));
  const int64_t classes = labels.max().item<int64_t>() + 1, D = real.size(1);
  std::vector<FidelityRow> rows;
  for (int64_t per_class : config.landmarks_per_class) {
    FidelityRow row;
    row.per_class = per_class;
    auto t0 = std::chrono::steady_clock::now();
    LandmarkConfig lc;
    lc.strategy = config.strategy;
    lc.per_class = per_class;
    lc.seed = config.seed;
    auto U = real.index_select(0, select_landmarks(real, labels, lc));
    row.total = U.size(0);
    ProjectedFieldConfig pc;
    pc.temperatures = config.temperatures;
    pc.ridge = config.ridge;
    const ShardLayout layout{config.conditional ? classes : 1, 1};
    auto field = build_projected_field(real, config.conditional ? labels : torch::Tensor(), U, {}, layout,
                                       std::nullopt, pc);
    field.attractions(queries.narrow(0, 0, 2) / field.scale(), {});  // fold once, outside the timing
    row.precompute_s = seconds_since(t0);
    row.scale = field.scale();
    row.condition_number = field.max_condition_number();

    auto xs = queries / field.scale();
    auto qlab = config.conditional ? query_labels : torch::Tensor();
    std::vector<double> tau_effs;
    for (double t : config.temperatures) tau_effs.push_back(effective_temperature(t, D));
    std::vector<int64_t> clamped;
    auto proj = field.attractions(xs, qlab, &clamped);
    auto exact = exact_attractions(xs, real / field.scale(), tau_effs, qlab, config.conditional ? labels : torch::Tensor());
    auto repel = exact_repulsions(xs, qlab, tau_effs, pc.eps);
    auto target_p = xs.clone(), target_e = xs.clone();
    int64_t total_clamped = 0;
    for (size_t t = 0; t < tau_effs.size(); ++t) {
      auto dp = proj[t] - xs, de = exact[t] - xs;
      const double cos = torch::cosine_similarity(dp, de, 1, 1e-12).mean().item<double>();
      const double rel = ((proj[t] - exact[t]).norm() / de.norm()).item<double>();
      row.cosine_per_temperature.push_back(cos);
      row.rel_l2_per_temperature.push_back(rel);
      target_p += normalize_drift(proj[t] - repel[t], DriftNorm::AddEps, pc.eps);
      target_e += normalize_drift(exact[t] - repel[t], DriftNorm::AddEps, pc.eps);
      total_clamped += clamped[t];
    }
    const double nt = static_cast<double>(tau_effs.size());
    for (double c : row.cosine_per_temperature) row.cosine += c / nt;
    for (double r : row.rel_l2_per_temperature) row.rel_l2 += r / nt;
    row.target_mse = (target_p - target_e).pow(2).mean().item<double>();
    row.clamped_fraction = static_cast<double>(total_clamped) / (nt * static_cast<double>(xs.size(0)));

    // Cost of one step's attraction for `batch` queries: exact over all |Y| vs projected.
    const int64_t B = std::min(config.batch, xs.size(0));
    auto xb = xs.narrow(0, 0, B);
    auto lb = qlab.defined() ? qlab.narrow(0, 0, B) : torch::Tensor();
    auto real_scaled = real / field.scale();
    row.exact_ms = time_call([&] {
      exact_attractions(xb, real_scaled, tau_effs, lb, config.conditional ? labels : torch::Tensor());
    }, config.repeats, /*warmup=*/0).median_ms;
    row.projected_ms = time_call([&] { field.attractions(xb, lb); }, config.repeats, /*warmup=*/0).median_ms;
    if (config.bf16) {
      // The same attraction with bf16 products, against the same exact one.
      field.set_query_options(pc.landmark_block, ProductPrecision::BFloat16);
      auto low = field.attractions(xs, qlab);
      for (size_t t = 0; t < tau_effs.size(); ++t) {
        auto dp = low[t] - xs, de = exact[t] - xs;
        const double cos = torch::cosine_similarity(dp, de, 1, 1e-12).mean().item<double>();
        row.cosine_bf16_per_temperature.push_back(cos);
        row.cosine_bf16 += cos / nt;
        row.rel_l2_bf16 += ((low[t] - exact[t]).norm() / de.norm()).item<double>() / nt;
      }
      field.attractions(xb, lb);  // fold the bf16 copies outside the timing
      row.projected_bf16_ms = time_call([&] { field.attractions(xb, lb); }, config.repeats, /*warmup=*/0).median_ms;
    }
    rows.push_back(row);
    if (progress) progress(row);
  }
  return rows;
}

}  // namespace driftx
