// driftx lab: fields, particle flows, tiny generators and the experiment over targets x fields x seeds.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "driftx/error.h"
#include "driftx/kernel.h"
#include "driftx/lab.h"
#include "driftx/landmarks.h"
#include "driftx/projected_field.h"
#include "driftx/train.h"

namespace driftx {

// ---- fields -----------------------------------------------------------------------------------------

LabField::LabField(const LabFieldSpec& spec, const torch::Tensor& real, double scale,
                   const std::vector<double>& temperatures, double ridge, uint64_t seed)
    : spec_(spec), gen_(at::detail::createCPUGenerator(seed)) {
  DRIFTX_CHECK(real.dim() == 2 && real.size(0) >= 2, "lab field: real samples must be n x D with n >= 2, got {}",
               shape_str(real.sizes()));
  DRIFTX_CHECK(std::isfinite(scale) && scale > 0, "lab field: scale must be > 0, got {}", scale);
  DRIFTX_CHECK(!temperatures.empty(), "lab field: no temperatures");
  const int64_t n = real.size(0), D = real.size(1);
  auto r = real.to(torch::kFloat32).contiguous();
  real_scaled_ = r / scale;
  for (double t : temperatures) tau_effs_.push_back(effective_temperature(t, D));
  if (spec.kind == "exact") {
    spec_.strategy = "exact";
    spec_.rank = n;
  } else if (spec.kind == "minibatch") {
    DRIFTX_CHECK(spec.rank >= 1, "lab field: a minibatch needs >= 1 positive, got {}", spec.rank);
    spec_.strategy = "minibatch";
    spec_.rank = std::min(spec.rank, n);
  } else if (spec.kind == "projected") {
    DRIFTX_CHECK(spec.rank >= 1 && spec.rank <= n, "lab field: rank {} must be in [1, {}] (the real samples)", spec.rank, n);
    LandmarkConfig lc;
    lc.strategy = parse_landmark_strategy(spec.strategy);
    lc.total = spec.rank;
    lc.seed = seed;
    spec_.strategy = to_string(lc.strategy);
    landmarks_ = r.index_select(0, select_landmarks(r, {}, lc));
    ProjectedFieldConfig pc;
    pc.temperatures = temperatures;
    pc.ridge = ridge;
    eps_ = pc.eps;
    projected_ = std::make_shared<ProjectedField>(
        build_projected_field(r, {}, landmarks_, {}, ShardLayout{1, 1}, scale, pc));
    condition_ = projected_->max_condition_number();
  } else {
    fail("lab field: unknown kind '{}' (exact, minibatch or projected)", spec.kind);
  }
}

std::vector<torch::Tensor> LabField::attractions(const torch::Tensor& xs) {
  torch::NoGradGuard no_grad;
  auto x = xs.detach().to(torch::kFloat32);
  if (spec_.kind == "exact") return exact_attractions(x, real_scaled_, tau_effs_);
  if (spec_.kind == "minibatch") {
    auto idx = torch::randperm(real_scaled_.size(0), gen_).narrow(0, 0, spec_.rank);
    return exact_attractions(x, real_scaled_.index_select(0, idx), tau_effs_);
  }
  std::vector<int64_t> clamped;
  auto out = projected_->attractions(x, {}, &clamped);
  for (int64_t c : clamped) clamped_ += c;
  queries_ += x.size(0) * static_cast<int64_t>(clamped.size());
  return out;
}

torch::Tensor lab_combine(const std::vector<torch::Tensor>& attraction, const std::vector<torch::Tensor>& repulsion,
                          bool normalise, double eps) {
  DRIFTX_CHECK(attraction.size() == repulsion.size() && !attraction.empty(),
               "lab: {} attraction terms but {} repulsion terms", attraction.size(), repulsion.size());
  auto v = torch::zeros_like(attraction[0]);
  for (size_t t = 0; t < attraction.size(); ++t) {
    auto d = attraction[t] - repulsion[t];
    v.add_(normalise ? normalize_drift(d, DriftNorm::AddEps, eps) : d);
  }
  return v;
}

torch::Tensor LabField::drift(const torch::Tensor& xs, bool normalise, const torch::Tensor& negatives) {
  torch::NoGradGuard no_grad;
  auto x = xs.detach().to(torch::kFloat32);
  auto attract = attractions(x);
  auto repel = negatives.defined() ? exact_attractions(x, negatives.to(torch::kFloat32), tau_effs_)
                                   : exact_repulsions(x, {}, tau_effs_, eps_);
  return lab_combine(attract, repel, normalise, eps_);
}

double lab_scale(const torch::Tensor& real) {
  auto r = real.to(torch::kFloat32);
  return projected_feature_scale(r, r);
}

// ---- flows and generators ----------------------------------------------------------------------------

torch::Tensor lab_flow(LabField& field, const torch::Tensor& x0_scaled, int64_t steps, double eta, bool normalise) {
  torch::NoGradGuard no_grad;
  DRIFTX_CHECK(x0_scaled.dim() == 2 && x0_scaled.size(0) >= 2, "lab flow: need >= 2 particles (B x D), got {}",
               shape_str(x0_scaled.sizes()));
  DRIFTX_CHECK(steps >= 0 && eta > 0, "lab flow: need steps >= 0 and eta > 0 (got {}, {})", steps, eta);
  std::vector<torch::Tensor> path{x0_scaled.to(torch::kFloat32).clone()};
  for (int64_t t = 0; t < steps; ++t) path.push_back(path.back() + eta * field.drift(path.back(), normalise));
  return torch::stack(path);
}

std::vector<double> trajectory_deviation(const torch::Tensor& a, const torch::Tensor& b) {
  DRIFTX_CHECK(a.sizes() == b.sizes() && a.dim() == 3, "trajectory deviation: shapes {} and {} differ (need T x B x D)",
               shape_str(a.sizes()), shape_str(b.sizes()));
  auto d = (a.to(torch::kFloat64) - b.to(torch::kFloat64)).norm(2, {2}).mean(1).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

torch::Tensor lab_train_generator(LabField& field, double scale, const LabTrainConfig& c, uint64_t seed,
                                  int64_t n_samples) {
  DRIFTX_CHECK(c.steps >= 0 && c.batch >= 2 && c.noise_dim >= 1 && c.width >= 1 && c.lr > 0,
               "lab generator: need steps >= 0, batch >= 2, noise_dim, width >= 1 and lr > 0");
  torch::nn::Sequential net(torch::nn::Linear(c.noise_dim, c.width), torch::nn::SiLU(),
                            torch::nn::Linear(c.width, c.width), torch::nn::SiLU(),
                            torch::nn::Linear(c.width, field.dim()));
  // Initialisation from this call's own generator (PyTorch's default bounds for Linear: U(+-1/sqrt(fan_in))
  // for weights and biases), so generators trained on several threads at once stay reproducible.
  auto init = at::detail::createCPUGenerator(seed);
  {
    torch::NoGradGuard no_grad;
    for (const auto& module : net->modules(/*include_self=*/false))
      if (auto* lin = module->as<torch::nn::Linear>()) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(lin->weight.size(1)));
        lin->weight.uniform_(-bound, bound, init);
        lin->bias.uniform_(-bound, bound, init);
      }
  }
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(c.lr).betas({0.9, 0.95}));
  auto gen = at::detail::createCPUGenerator(seed + 1);
  for (int64_t step = 0; step < c.steps; ++step) {
    auto eps = torch::randn({c.batch, c.noise_dim}, gen);
    auto xs = net->forward(eps) / scale;
    auto v = field.drift(xs, /*normalise=*/true);
    auto loss = (xs - (xs.detach() + v)).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(net->parameters(), 2.0);
    opt.step();
  }
  torch::NoGradGuard no_grad;
  return net->forward(torch::randn({n_samples, c.noise_dim}, gen)).detach();
}

// ---- statistics ----------------------------------------------------------------------------------------

double Stat::mean() const {
  if (values.empty()) return NAN;
  double s = 0;
  for (double v : values) s += v;
  return s / static_cast<double>(values.size());
}

double Stat::std() const {
  if (values.size() < 2) return 0;
  const double m = mean();
  double s = 0;
  for (double v : values) s += (v - m) * (v - m);
  return std::sqrt(s / static_cast<double>(values.size() - 1));
}

// ---- the experiment ----------------------------------------------------------------------------------

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Independent random streams of one seed (data, queries, particles, landmarks, ...).
uint64_t stream(uint64_t seed, uint64_t k) { return seed * 1000 + k; }

double mean_cosine(const torch::Tensor& a, const torch::Tensor& b) {
  return torch::cosine_similarity(a.to(torch::kFloat64), b.to(torch::kFloat64), 1, 1e-12).mean().item<double>();
}
double rel_l2(const torch::Tensor& a, const torch::Tensor& ref, const torch::Tensor& base) {
  auto r = ref.to(torch::kFloat64);
  return ((a.to(torch::kFloat64) - r).norm() / (r - base.to(torch::kFloat64)).norm().clamp_min(1e-30)).item<double>();
}

// Mean over temperatures of the attraction displacement b+ - x.
torch::Tensor mean_displacement(const std::vector<torch::Tensor>& attr, const torch::Tensor& x) {
  auto d = torch::zeros_like(x);
  for (const auto& a : attr) d += a - x;
  return d / static_cast<double>(attr.size());
}

}  // namespace

std::string canonical_lab_strategy(const std::string& name) {
  const std::string full = name == "random" ? "random_global" : name == "kmeans" ? "kmeans_global" : name;
  const auto s = parse_landmark_strategy(full);
  DRIFTX_CHECK(s != LandmarkStrategy::RandomPerClass && s != LandmarkStrategy::KMeansPerClass,
               "lab: strategy '{}' needs class labels; the lab's targets have none (use random, kmeans, kcenter, "
               "facility_location or density_weighted_kcenter)", name);
  return to_string(s);
}

LabReport run_lab(const LabConfig& config, const std::function<void(const std::string&)>& progress) {
  const auto t_start = std::chrono::steady_clock::now();
  LabReport rep;
  rep.config = config;
  auto& cfg = rep.config;
  if (cfg.temperatures.empty()) cfg.temperatures = default_temperatures("driftxpress");
  DRIFTX_CHECK(!cfg.targets.empty(), "lab: no targets");
  for (const auto& t : cfg.targets) sample_lab_target(t, 1, 0, 2);  // unknown names fail here
  DRIFTX_CHECK(cfg.dim >= 2 && cfg.dim <= 64, "lab: --dim must be in [2, 64], got {}", cfg.dim);
  DRIFTX_CHECK(cfg.n_data >= 2 && cfg.n_eval >= 2, "lab: --n-data and --n-eval must be >= 2");
  DRIFTX_CHECK(cfg.particles >= 2 && cfg.queries >= 2 && cfg.grid >= 2, "lab: --particles, --queries and --grid must be >= 2");
  DRIFTX_CHECK(cfg.flow_steps >= 1 && cfg.eta > 0 && std::isfinite(cfg.eta), "lab: need --flow-steps >= 1 and --eta > 0");
  DRIFTX_CHECK(cfg.seeds >= 1 && cfg.record_every >= 1, "lab: need --seeds >= 1 and --record-every >= 1");
  DRIFTX_CHECK(cfg.query_noise >= 0 && cfg.ridge >= 0, "lab: --query-noise and --ridge must be >= 0");
  for (auto& s : cfg.strategies) s = canonical_lab_strategy(s);
  for (int64_t r : cfg.ranks)
    DRIFTX_CHECK(r >= 1 && r <= cfg.n_data, "lab: rank {} must be in [1, --n-data {}]", r, cfg.n_data);
  for (int64_t p : cfg.minibatch_sizes)
    DRIFTX_CHECK(p >= 1 && p <= cfg.n_data, "lab: minibatch size {} must be in [1, --n-data {}]", p, cfg.n_data);
  std::sort(cfg.ranks.begin(), cfg.ranks.end());
  cfg.ranks.erase(std::unique(cfg.ranks.begin(), cfg.ranks.end()), cfg.ranks.end());

  std::vector<LabFieldSpec> specs{{"exact", "exact", cfg.n_data}};
  for (int64_t p : cfg.minibatch_sizes) specs.push_back({"minibatch", "minibatch", p});
  for (const auto& s : cfg.strategies)
    for (int64_t r : cfg.ranks) specs.push_back({"projected", s, r});
  // Fields drawn in the pictures (first seed): exact, the largest minibatch, each strategy's lowest and
  // highest rank.
  auto pictured = [&](const LabFieldSpec& s) {
    if (s.kind == "exact") return true;
    if (s.kind == "minibatch") return s.rank == *std::max_element(cfg.minibatch_sizes.begin(), cfg.minibatch_sizes.end());
    return !cfg.ranks.empty() && (s.rank == cfg.ranks.front() || s.rank == cfg.ranks.back());
  };
  auto picture_label = [](const LabFieldSpec& s) {
    if (s.kind == "exact") return std::string("exact");
    if (s.kind == "minibatch") return fmt::format("minibatch P={}", s.rank);
    const std::string short_name = s.strategy == "random_global" ? "random" : s.strategy == "kmeans_global" ? "kmeans" : s.strategy;
    return fmt::format("{} M={}", short_name, s.rank);
  };

  for (int64_t t = 0; t <= cfg.flow_steps; t += cfg.record_every) rep.recorded_steps.push_back(t);
  if (rep.recorded_steps.back() != cfg.flow_steps) rep.recorded_steps.push_back(cfg.flow_steps);

  const int64_t D = cfg.dim, nt = static_cast<int64_t>(cfg.temperatures.size());
  const auto embed = lab_embedding(D);  // D x 2
  const auto recorded = rep.recorded_steps;

  // One unit of work = one target x one seed; units are independent (each seeds its own streams and
  // runs its tensor operations on its own thread), so the report does not depend on the worker count.
  struct Unit {
    std::string target;
    int64_t si = 0;
    std::vector<std::map<std::string, double>> metrics;               // per field
    std::vector<std::map<std::string, std::vector<double>>> lists;    // per field
    std::vector<LabFieldSpec> resolved;                               // per field (canonical strategy, rank)
    std::map<std::string, double> info;
    std::vector<LabPictures::Quiver> quivers;
    std::vector<LabPictures::Paths> paths;
    torch::Tensor data_plane;
    double seconds = 0;
  };
  std::vector<Unit> units;
  for (const auto& target : cfg.targets)
    for (int64_t si = 0; si < cfg.seeds; ++si) {
      units.emplace_back();
      units.back().target = target;
      units.back().si = si;
    }

  auto run_unit = [&](Unit& unit) {
    const auto t_unit = std::chrono::steady_clock::now();
    const std::string& target = unit.target;
    const int64_t si = unit.si;
    const uint64_t seed = cfg.seed + static_cast<uint64_t>(si);
    torch::NoGradGuard no_grad;
    auto data = sample_lab_target(target, cfg.n_data, stream(seed, 1), D);
    auto eval = sample_lab_target(target, cfg.n_eval, stream(seed, 2), D);
    const double S = lab_scale(data);
    const uint64_t sw_seed = stream(seed, 9);
    auto sw = [&](const torch::Tensor& a, const torch::Tensor& b) {
      return sliced_wasserstein(a, b, cfg.sw_projections, sw_seed);
    };
    // Queries: a grid over the data's box in its plane (10% margin), and perturbed fresh samples.
    auto plane = torch::matmul(data, embed);
    auto lo = std::get<0>(plane.min(0)), hi = std::get<0>(plane.max(0));
    auto pad = 0.1 * (hi - lo);
    lo = lo - pad, hi = hi + pad;
    auto grid_in_plane = [&](int64_t g) {
      auto u = torch::linspace(0, 1, g);
      auto gx = lo[0] + u * (hi[0] - lo[0]), gy = lo[1] + u * (hi[1] - lo[1]);
      auto mesh = torch::meshgrid({gy, gx}, "ij");
      return torch::stack({mesh[1].reshape(-1), mesh[0].reshape(-1)}, 1);
    };
    auto grid_s = torch::matmul(grid_in_plane(cfg.grid), embed.t()) / S;
    auto qgen = at::detail::createCPUGenerator(stream(seed, 3));
    auto q_s = (sample_lab_target(target, cfg.queries, stream(seed, 4), D) +
                cfg.query_noise * torch::randn({cfg.queries, D}, qgen)) / S;
    auto pgen = at::detail::createCPUGenerator(stream(seed, 5));
    auto x0 = torch::matmul(torch::randn({cfg.particles, 2}, pgen), embed.t());  // N(0, I) in the plane
    auto x0_s = x0 / S;
    unit.info["scale"] = S;
    unit.info["floor_sw_particles"] = sw(sample_lab_target(target, cfg.particles, stream(seed, 6), D), eval);
    unit.info["floor_sw_generator"] = sw(sample_lab_target(target, cfg.n_eval, stream(seed, 7), D), eval);
    unit.info["start_sw_data"] = sw(x0, eval);

    std::vector<double> tau_effs;
    for (double tau : cfg.temperatures) tau_effs.push_back(effective_temperature(tau, D));
    auto rep_grid = exact_attractions(grid_s, x0_s, tau_effs);  // repulsion from the start particles
    auto rep_q = exact_repulsions(q_s, {}, tau_effs);
    auto quiver_s = torch::matmul(grid_in_plane(15), embed.t()) / S;  // the pictures' coarse grid

    std::vector<torch::Tensor> ref_ag, ref_aq;
    torch::Tensor ref_vg, ref_vq, ref_traj, ref_gen, ref_quiver;
    unit.metrics.resize(specs.size());
    unit.lists.resize(specs.size());
    for (size_t f = 0; f < specs.size(); ++f) {
      const auto t_field = std::chrono::steady_clock::now();
      LabField field(specs[f], data, S, cfg.temperatures, cfg.ridge, stream(seed, 8));
      unit.resolved.push_back(field.spec());
      auto& m = unit.metrics[f];
      auto& lists = unit.lists[f];
      field.reset_counts();
      auto ag = field.attractions(grid_s);
      const double cg = field.queries() ? static_cast<double>(field.clamped()) / static_cast<double>(field.queries()) : 0.0;
      field.reset_counts();
      auto aq = field.attractions(q_s);
      const double cq = field.queries() ? static_cast<double>(field.clamped()) / static_cast<double>(field.queries()) : 0.0;
      auto vg = lab_combine(ag, rep_grid, true), vq = lab_combine(aq, rep_q, true);
      if (f == 0) ref_ag = ag, ref_aq = aq, ref_vg = vg, ref_vq = vq;
      auto& cos_g = lists["attr_cos_grid_per_temp"];
      auto& cos_q = lists["attr_cos_samples_per_temp"];
      double acg = 0, arg = 0, acq = 0, arq = 0;
      for (int64_t t = 0; t < nt; ++t) {
        const double c1 = mean_cosine(ag[t] - grid_s, ref_ag[t] - grid_s), c2 = mean_cosine(aq[t] - q_s, ref_aq[t] - q_s);
        cos_g.push_back(c1), cos_q.push_back(c2);
        acg += c1 / nt, acq += c2 / nt;
        arg += rel_l2(ag[t], ref_ag[t], grid_s) / nt, arq += rel_l2(aq[t], ref_aq[t], q_s) / nt;
      }
      m["attr_cos_grid"] = acg;
      m["attr_rel_l2_grid"] = arg;
      m["attr_cos_samples"] = acq;
      m["attr_rel_l2_samples"] = arq;
      m["field_cos_grid"] = mean_cosine(vg, ref_vg);
      m["field_rel_l2_grid"] = rel_l2(vg, ref_vg, torch::zeros_like(vg));
      m["field_cos_samples"] = mean_cosine(vq, ref_vq);
      m["field_rel_l2_samples"] = rel_l2(vq, ref_vq, torch::zeros_like(vq));
      m["clamped_grid"] = cg;
      m["clamped_samples"] = cq;
      m["condition_number"] = field.condition_number();

      // Particle flow from the shared start.
      auto traj = lab_flow(field, x0_s, cfg.flow_steps, cfg.eta, cfg.flow_normalise);
      if (f == 0) ref_traj = traj;
      auto dev = trajectory_deviation(traj, ref_traj);
      for (double& d : dev) d *= S;
      auto& curve = lists["traj_dev_curve"];
      for (int64_t step : recorded) curve.push_back(dev[static_cast<size_t>(step)]);
      double dm = 0;
      for (double d : dev) dm += d / static_cast<double>(dev.size());
      auto end = traj[cfg.flow_steps] * S, ref_end = ref_traj[cfg.flow_steps] * S;
      m["traj_dev_mean"] = dm;
      m["endpoint_dev"] = dev.back();
      m["endpoint_sw_exact"] = sw(end, ref_end);
      m["endpoint_sw_data"] = sw(end, eval);
      m["final_speed"] = ((traj[cfg.flow_steps] - traj[cfg.flow_steps - 1]).norm(2, {1}).mean() * S).item<double>();

      // A tiny generator trained with this field.
      if (!cfg.skip_train) {
        torch::Tensor samples;
        {
          at::AutoGradMode grad(true);
          samples = lab_train_generator(field, S, cfg.train, stream(seed, 10), cfg.n_eval);
        }
        if (f == 0) ref_gen = samples;
        m["train_sw_data"] = sw(samples, eval);
        m["train_sw_exact"] = sw(samples, ref_gen);
      }
      m["seconds"] = seconds_since(t_field);

      if (si == 0 && pictured(specs[f])) {
        field.reset_counts();
        auto disp = mean_displacement(field.attractions(quiver_s), quiver_s);
        if (f == 0) ref_quiver = disp;
        LabPictures::Quiver qv;
        qv.target = target;
        qv.label = picture_label(field.spec());
        qv.points = torch::matmul(quiver_s * S, embed);
        qv.arrows = torch::matmul(disp * S, embed);
        qv.cosine = torch::cosine_similarity(disp, ref_quiver, 1, 1e-12);
        if (field.landmarks().defined()) qv.landmarks = torch::matmul(field.landmarks(), embed);
        unit.quivers.push_back(qv);
        const int64_t shown = std::min<int64_t>(64, cfg.particles);
        unit.paths.push_back({target, qv.label, torch::matmul(traj.narrow(1, 0, shown) * S, embed)});
      }
    }
    if (si == 0) unit.data_plane = torch::matmul(data.narrow(0, 0, std::min<int64_t>(1000, cfg.n_data)), embed);
    unit.seconds = seconds_since(t_unit);
  };

  // Workers pull units in order; an exception in one stops the others and is rethrown here.
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(cfg.workers > 0 ? cfg.workers : 1,
                                                                  static_cast<int64_t>(units.size())));
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::exception_ptr error;
  size_t done_units = 0;
  auto work = [&] {
    for (size_t i; !failed && (i = next++) < units.size();) {
      try {
        run_unit(units[i]);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      ++done_units;
      if (progress) {
        const double el = seconds_since(t_start);
        progress(fmt::format("[lab {}/{}] {} seed {}: {} fields in {:.1f} s (elapsed {:.0f} s, about {:.0f} s left)",
                             done_units, units.size(), units[i].target, cfg.seed + static_cast<uint64_t>(units[i].si),
                             specs.size(), units[i].seconds, el,
                             el / static_cast<double>(done_units) * static_cast<double>(units.size() - done_units)));
      }
    }
  };
  if (workers == 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (int64_t w = 0; w < workers; ++w) pool.emplace_back(work);
    for (auto& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);

  // Merge in (target, seed) order.
  for (const auto& target : cfg.targets) {
    std::vector<LabRow> rows(specs.size());
    for (const auto& unit : units) {
      if (unit.target != target) continue;
      for (const auto& [k, v] : unit.info) rep.target_info[target][k].values.push_back(v);
      for (size_t f = 0; f < specs.size(); ++f) {
        auto& row = rows[f];
        row.target = target;
        row.field = specs[f].kind;
        row.strategy = unit.resolved[f].strategy;
        row.rank = unit.resolved[f].rank;
        for (const auto& [k, v] : unit.metrics[f]) row.metrics[k].values.push_back(v);
        for (const auto& [k, list] : unit.lists[f]) {
          auto& out = row.lists[k];
          out.resize(list.size());
          for (size_t i = 0; i < list.size(); ++i) out[i].values.push_back(list[i]);
        }
      }
      if (unit.si == 0) {
        rep.pictures.data[target] = unit.data_plane;
        for (const auto& q : unit.quivers) rep.pictures.quivers.push_back(q);
        for (const auto& p : unit.paths) rep.pictures.paths.push_back(p);
      }
    }
    for (auto& r : rows) rep.rows.push_back(std::move(r));
  }
  rep.seconds = seconds_since(t_start);
  return rep;
}

}  // namespace driftx
