// The 2-D (and small-D) lab (issue 13): how the rank of the DriftXpress projection changes the field,
// the particle trajectories, their fixed points and a trained generator, against the exact full-data
// field and the standard minibatch field, over seeds. docs/lab.md documents every choice and every key
// of the report.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace driftx {

class ProjectedField;

// ---- synthetic targets --------------------------------------------------------------------------

// "eight_gaussians", "checkerboard", "two_moons", "swiss_roll": 2-D targets inside about [-2.5, 2.5]^2.
std::vector<std::string> lab_target_names();

// The plane a target lives in: dim x 2 with orthonormal columns. dim 2: the identity; dim > 2: a fixed
// random orthonormal pair (the same for every seed, so seeds vary the samples, not the geometry).
torch::Tensor lab_embedding(int64_t dim);

// n samples (n x dim, float32) of a named target, deterministic for (name, n, seed, dim). dim > 2: the
// 2-D sample lifted by lab_embedding plus N(0, 0.05^2) noise in every coordinate (so the data is not
// degenerate off the plane). Unknown name or dim < 2: driftx::Error.
torch::Tensor sample_lab_target(const std::string& name, int64_t n, uint64_t seed, int64_t dim = 2);

// ---- the distance between point sets -------------------------------------------------------------

// Sliced Wasserstein-2 distance between the empirical distributions of a (n x D) and b (m x D):
// sqrt(mean over `projections` random unit directions of W2^2 of the 1-D projections), W2 of 1-D
// empirical measures by their quantile functions at max(n, m) levels (i + 0.5) / max(n, m). Directions
// come from `seed` alone, so two calls with the same seed compare like with like. Computed in float64;
// 0 for identical sets (any row order), > 0 otherwise (almost surely over the directions).
double sliced_wasserstein(const torch::Tensor& a, const torch::Tensor& b, int64_t projections = 256,
                          uint64_t seed = 0);

// ---- fields ----------------------------------------------------------------------------------------

// One field of the lab, over a fixed real set, in coordinates divided by the lab's scale S. Only the
// attraction differs between fields; the repulsion is always exact (SPEC §3, the default).
//  exact:     b+(x) = sum_y k(x,y) y / sum_y k(x,y) over all real samples (exact_attractions);
//  minibatch: the same formula over `rank` positives drawn afresh (uniformly, without replacement) at
//             every call: the standard method's sampling of positives, in the kernel-mean form;
//  projected: the DriftXpress Nystrom attraction on `rank` landmarks chosen by `strategy`.
struct LabFieldSpec {
  std::string kind;      // "exact" | "minibatch" | "projected"
  std::string strategy;  // projected: a landmark strategy (landmarks.h); otherwise equal to kind
  int64_t rank = 0;      // projected: landmarks M; minibatch: positives P; exact: |Y|
};

class LabField {
 public:
  // real: n x D raw samples; scale: S; temperatures: tau (tau_eff = tau sqrt(D)); seed: landmarks and
  // the minibatch draws.
  LabField(const LabFieldSpec& spec, const torch::Tensor& real, double scale, const std::vector<double>& temperatures,
           double ridge, uint64_t seed);

  // Per temperature, the attraction b+(xs) (B x D, scaled coordinates). Not const: the minibatch field
  // draws new positives; the projected field counts clamped denominators.
  std::vector<torch::Tensor> attractions(const torch::Tensor& xs);

  // sum_tau [normalised] (b+ - b-), scaled coordinates. negatives undefined: the repulsion runs among
  // the queries themselves (j != i, exact_repulsions); otherwise the kernel mean of `negatives` (scaled).
  // normalise: each temperature's term divided by its root mean square (AddEps, SPEC §3), as in training.
  torch::Tensor drift(const torch::Tensor& xs, bool normalise, const torch::Tensor& negatives = {});

  const LabFieldSpec& spec() const { return spec_; }
  int64_t dim() const { return real_scaled_.size(1); }
  const std::vector<double>& tau_effs() const { return tau_effs_; }
  torch::Tensor landmarks() const { return landmarks_; }  // raw, M x D (projected), else undefined
  double condition_number() const { return condition_; }  // max over temperatures (projected), else 0
  // Queries whose projected denominator was clamped at eps since the last reset, and queries seen.
  int64_t clamped() const { return clamped_; }
  int64_t queries() const { return queries_; }
  void reset_counts() { clamped_ = queries_ = 0; }

 private:
  LabFieldSpec spec_;
  torch::Tensor real_scaled_, landmarks_;
  std::vector<double> tau_effs_;
  double condition_ = 0, eps_ = 1e-8;
  int64_t clamped_ = 0, queries_ = 0;
  std::shared_ptr<ProjectedField> projected_;
  at::Generator gen_;
};

// sum over temperatures of (attraction - repulsion), each term divided by its root mean square over
// all entries (normalize_drift, AddEps) when `normalise`.
torch::Tensor lab_combine(const std::vector<torch::Tensor>& attraction, const std::vector<torch::Tensor>& repulsion,
                          bool normalise, double eps = 1e-8);

// The lab's feature scale S: SPEC §3's formula with the real data itself in place of the landmarks
// (mean distance from the data to 256 evenly spaced data rows, / sqrt(D)), so every field of a target
// shares one kernel and the fields differ only in how they approximate the attraction.
double lab_scale(const torch::Tensor& real);

// Particles moved by x <- x + eta V(x) for `steps` steps (scaled coordinates), the repulsion among the
// particles. Returns the trajectory (steps + 1) x B x D.
torch::Tensor lab_flow(LabField& field, const torch::Tensor& x0_scaled, int64_t steps, double eta, bool normalise);

// Mean over particles of ||a_t,i - b_t,i|| for every step t of two trajectories (T x B x D each): T values.
std::vector<double> trajectory_deviation(const torch::Tensor& a, const torch::Tensor& b);

// A tiny MLP generator (noise -> 128 -> 128 -> D, SiLU) trained with `field` through the drifting loss
// mean((x/S - stopgrad(x/S + V))^2), V normalised as in training. Returns `n_samples` samples (raw).
struct LabTrainConfig {
  int64_t steps = 300, batch = 256, noise_dim = 16, width = 128;
  double lr = 2e-3;
};
torch::Tensor lab_train_generator(LabField& field, double scale, const LabTrainConfig& config, uint64_t seed,
                                  int64_t n_samples);

// ---- the whole experiment -----------------------------------------------------------------------------

// "random" -> random_global, "kmeans" -> kmeans_global, other global strategies by their names;
// per-class strategies are refused (the targets have no classes).
std::string canonical_lab_strategy(const std::string& name);

struct LabConfig {
  std::vector<std::string> targets = lab_target_names();
  int64_t dim = 2;
  std::vector<int64_t> ranks{4, 8, 16, 32, 64, 128};
  std::vector<std::string> strategies{"random_global", "kmeans_global"};
  std::vector<int64_t> minibatch_sizes{4, 8, 16, 32, 64, 128};  // empty: no minibatch field
  std::vector<double> temperatures;  // empty: the project's default (default_temperatures)
  double ridge = 1e-4;
  int64_t n_data = 2000;        // real samples the fields use
  int64_t n_eval = 2000;        // fresh real samples the distances are measured against
  int64_t grid = 32;            // grid x grid queries over the data's box (+10% margin)
  int64_t queries = 512;        // sample queries: fresh real samples + N(0, query_noise^2)
  double query_noise = 0.1;     // raw units
  int64_t particles = 256;      // flow particles, drawn from N(0, I) in the target's plane
  int64_t flow_steps = 200;
  double eta = 0.2;             // step in scaled coordinates
  bool flow_normalise = false;  // true: the training's normalised drift drives the flow
  int64_t record_every = 10;    // deviation curve sampling (steps)
  LabTrainConfig train;
  bool skip_train = false;
  int64_t seeds = 3;
  uint64_t seed = 0;            // seeds used: seed, seed + 1, ...
  int64_t sw_projections = 256;
  // Threads running (target, seed) units at once, each unit single-threaded inside; the report does not
  // depend on it. The CLI sets it to --threads (0: all cores) and LibTorch's intra-op threads to 1.
  int64_t workers = 1;
};

// Mean and sample standard deviation (n - 1; 0 for one value) of per-seed values, kept with them.
struct Stat {
  std::vector<double> values;
  double mean() const;
  double std() const;
};

struct LabRow {
  std::string target, field, strategy;
  int64_t rank = 0;
  std::map<std::string, Stat> metrics;           // scalar metrics, one value per seed
  std::map<std::string, std::vector<Stat>> lists;  // per temperature / per recorded step
};

// Pictures' inputs, from the first seed: everything needed to draw without recomputing fields.
struct LabPictures {
  struct Quiver {   // one per target x shown field
    std::string target, label;
    torch::Tensor points, arrows;   // P x 2 (plane coordinates, raw), attraction displacement per point
    torch::Tensor cosine;           // P: cosine to the exact arrows (1 for the exact field)
    torch::Tensor landmarks;        // M x 2 or undefined
  };
  struct Paths {
    std::string target, label;
    torch::Tensor trajectory;       // (T + 1) x B x 2, plane coordinates, raw
  };
  std::map<std::string, torch::Tensor> data;  // per target: real samples, plane coordinates
  std::vector<Quiver> quivers;
  std::vector<Paths> paths;
};

struct LabReport {
  LabConfig config;
  std::vector<LabRow> rows;
  std::map<std::string, std::map<std::string, Stat>> target_info;  // per target: scale, floors
  std::vector<int64_t> recorded_steps;
  LabPictures pictures;
  double seconds = 0;
};

LabReport run_lab(const LabConfig& config, const std::function<void(const std::string&)>& progress = {});

// JSON with config, targets, rows and the summary (docs/lab.md lists every key).
nlohmann::json lab_report_json(const LabReport& report);
nlohmann::json lab_config_json(const LabConfig& config);
std::string lab_report_markdown(const LabReport& report);
// The smallest rank whose mean metric reaches `threshold` for (target, strategy), or -1.
int64_t lab_rank_reaching(const LabReport& report, const std::string& target, const std::string& strategy,
                          const std::string& metric, double threshold);
// Writes report.json, report.md, config.json and the pictures (quiver.png, trajectories.png,
// rank_curves.png, deviation_vs_step.png) into dir.
void write_lab_outputs(const LabReport& report, const std::string& dir);
// The pictures alone (lab_plot.cpp).
void write_lab_pictures(const LabReport& report, const std::string& dir);

}  // namespace driftx
