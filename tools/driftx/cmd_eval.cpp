// driftx eval: FID / KID / precision-recall / class accuracy of a checkpoint's samples or of an .npy,
// always next to the data floor (n real train images vs n real test images, SPEC §6).
#include <chrono>
#include <iostream>
#include <optional>
#include <sstream>

#include <torch/script.h>

#include "commands.h"
#include "driftx/data.h"
#include "driftx/error.h"
#include "driftx/evaluator.h"
#include "driftx/files.h"
#include "driftx/metrics.h"
#include "driftx/npy.h"
#include "driftx/sha256.h"
#include "driftx/train.h"

namespace driftx::cli {

namespace {

struct EvalArgs {
  std::string ckpt, samples, labels, dataset, data_dir, models_dir, report, fid_features;
  int64_t n = 10000, batch = 500, kid_subsets = 100, kid_subset_size = 1000, k = 3;
  bool ema = false, n_given = false;
  double alpha = 1.0;
  uint64_t seed = 0;
};

struct Scores {
  double fid = 0;
  KidResult kid;
  PrecisionRecall pr;
  std::optional<double> accuracy;

  nlohmann::json to_json() const {
    nlohmann::json j = {{"fid", fid}, {"kid_mean", kid.mean}, {"kid_std", kid.std}, {"precision", pr.precision},
                        {"recall", pr.recall}};
    if (accuracy) j["class_accuracy"] = *accuracy;
    return j;
  }
};

std::pair<torch::Tensor, torch::Tensor> generate(const EvalArgs& a) {
  GeneratorConfig gc;
  auto g = load_generator(a.ckpt, a.ema, &gc);
  DRIFTX_CHECK(gc.channels == 1 && gc.image_size == 28, "{}: the generator makes {}x{}x{} images; the evaluator "
               "takes 28x28x1", a.ckpt, gc.image_size, gc.image_size, gc.channels);
  torch::Tensor labels;
  auto x = generate_samples(g, a.n, a.seed, a.alpha, a.batch, &labels);
  return {x, labels};
}

std::pair<torch::Tensor, torch::Tensor> read_samples(const EvalArgs& a) {
  auto x = read_npy(a.samples);
  DRIFTX_CHECK(x.dim() == 4 && x.size(1) == 1 && x.size(2) == 28 && x.size(3) == 28 && x.size(0) >= 2,
               "--samples {}: expected N x 1 x 28 x 28 images (N >= 2), got {}", a.samples, shape_str(x.sizes()));
  x = x.to(torch::kFloat32);
  require_finite(x, "--samples " + a.samples);
  const double lo = x.min().item<double>(), hi = x.max().item<double>();
  DRIFTX_CHECK(lo >= -1.001 && hi <= 1.001, "--samples {}: values span [{:.3g}, {:.3g}] but must lie in [-1, 1] "
               "(rescale 0..1 images with 2x - 1)", a.samples, lo, hi);
  torch::Tensor labels;
  if (!a.labels.empty()) {
    labels = read_npy(a.labels);
    DRIFTX_CHECK(labels.dim() == 1 && labels.size(0) == x.size(0) && labels.scalar_type() == torch::kInt64,
                 "--labels {}: expected {} int64 labels, got {} {}", a.labels, x.size(0), shape_str(labels.sizes()),
                 c10::toString(labels.scalar_type()));
    const int64_t classes = Dataset{}.num_classes;  // both datasets: the evaluators' 10 outputs
    const int64_t lo_label = labels.min().item<int64_t>(), hi_label = labels.max().item<int64_t>();
    DRIFTX_CHECK(lo_label >= 0 && hi_label < classes, "--labels {}: classes must lie in [0, {}), got [{}, {}]", a.labels,
                 classes, lo_label, hi_label);
  }
  // --n takes the first n; without it every sample counts.
  const int64_t n = a.n_given ? std::min(a.n, x.size(0)) : x.size(0);
  return {x.narrow(0, 0, n), labels.defined() ? labels.narrow(0, 0, n) : labels};
}

void run_eval(const EvalArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  DRIFTX_CHECK(a.ckpt.empty() != a.samples.empty(), "give exactly one of --ckpt C (generate) or --samples S.npy");
  DRIFTX_CHECK(a.labels.empty() || !a.samples.empty(), "--labels goes with --samples (a checkpoint's labels are known)");
  DRIFTX_CHECK(a.n >= 2 && a.batch >= 1, "--n must be >= 2 and --batch >= 1");
  check_guidance_scale(a.alpha);
  const std::string dataset = !a.dataset.empty() ? a.dataset : !a.ckpt.empty() ? checkpoint_config(a.ckpt).dataset : "mnist";

  auto [images, labels] = a.ckpt.empty() ? read_samples(a) : generate(a);
  const int64_t n = images.size(0);
  auto train = load_dataset(dataset, "train", a.data_dir);
  auto test = load_dataset(dataset, "test", a.data_dir);
  const int64_t n_real = std::min(n, test.size());
  // The real subsets do not depend on --seed: the floor is a property of the data, not of a run.
  torch::Tensor test_labels;
  const auto real_test = seeded_subset(test, n_real, 1, &test_labels);
  const auto real_train = seeded_subset(train, n_real, 2);

  std::optional<Evaluator> evaluator;
  nlohmann::json eval_meta;
  if (a.fid_features.empty() || labels.defined()) evaluator = load_evaluator(dataset, a.models_dir, &eval_meta);

  nlohmann::json extractor;
  std::function<torch::Tensor(const torch::Tensor&)> features;
  std::optional<torch::jit::Module> user;
  if (!a.fid_features.empty()) {
    try {
      user = torch::jit::load(a.fid_features);
    } catch (const c10::Error& e) {
      fail("--fid-features {}: not a loadable TorchScript module ({})", a.fid_features,
           e.what_without_backtrace());
    }
    user->eval();
    extractor = {{"kind", "torchscript"}, {"path", a.fid_features}, {"sha256", sha256_file_hex(a.fid_features)}};
    features = [&](const torch::Tensor& x) {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> parts;
      for (int64_t s = 0; s < x.size(0); s += a.batch) {
        auto f = user->forward({x.slice(0, s, std::min(x.size(0), s + a.batch))}).toTensor();
        parts.push_back(f.reshape({f.size(0), -1}).to(torch::kFloat64));
      }
      return torch::cat(parts);
    };
  } else {
    extractor = {{"kind", "evaluator"}, {"path", evaluator_weights_path(dataset, a.models_dir)},
                 {"sha256", eval_meta["sha256"]}, {"test_accuracy", eval_meta.value("test_accuracy", 0.0)}};
    features = [&](const torch::Tensor& x) { return evaluator_features(*evaluator, x, a.batch); };
  }

  const auto f_gen = features(images), f_test = features(real_test), f_train = features(real_train);
  auto score = [&](const torch::Tensor& f_real, const torch::Tensor& f_other) {
    Scores s;
    s.fid = fid(f_other, f_real);
    s.kid = kid(f_other, f_real, a.kid_subsets, a.kid_subset_size, 0);
    s.pr = precision_recall(f_real, f_other, a.k);
    return s;
  };
  Scores gen = score(f_test, f_gen), floor = score(f_test, f_train);
  if (labels.defined()) {
    gen.accuracy = class_accuracy(evaluator_logits(*evaluator, images, a.batch), labels);
    floor.accuracy = class_accuracy(evaluator_logits(*evaluator, real_test, a.batch), test_labels);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const std::string source = a.ckpt.empty() ? a.samples : fmt::format("{} ({})", a.ckpt, a.ema ? "EMA" : "raw");
  std::cout << fmt::format("{} samples from {} vs {} real {} test images; features: {} ({})\n", n, source, n_real,
                           dataset, extractor["kind"].get<std::string>(), extractor["path"].get<std::string>());
  std::cout << fmt::format("{:<16}{:>16}{:>26}\n", "", "samples", "floor (train vs test)");
  auto row = [](const char* name, const std::string& g, const std::string& f) {
    std::cout << fmt::format("{:<16}{:>16}{:>26}\n", name, g, f);
  };
  auto kid_str = [](const KidResult& k) { return fmt::format("{:.5f} +- {:.5f}", k.mean, k.std); };
  row("FID", fmt::format("{:.4f}", gen.fid), fmt::format("{:.4f}", floor.fid));
  row("KID", kid_str(gen.kid), kid_str(floor.kid));
  row("precision", fmt::format("{:.4f}", gen.pr.precision), fmt::format("{:.4f}", floor.pr.precision));
  row("recall", fmt::format("{:.4f}", gen.pr.recall), fmt::format("{:.4f}", floor.pr.recall));
  if (gen.accuracy) row("class accuracy", fmt::format("{:.4f}", *gen.accuracy), fmt::format("{:.4f}", *floor.accuracy));
  if (n < 10000) std::cout << fmt::format("note: FID is biased upward at n = {} < 10000; compare runs at equal n\n", n);
  std::cout << fmt::format("({:.1f}s)\n", seconds);

  if (!a.report.empty()) {
    nlohmann::json config = {{"dataset", dataset}, {"n", n}, {"n_real", n_real}, {"seed", a.seed},
                             {"kid_subsets", a.kid_subsets}, {"kid_subset_size", gen.kid.subset_size}, {"k", a.k},
                             {"conditional", labels.defined()}};
    if (!a.ckpt.empty()) {
      config["ckpt"] = a.ckpt;
      config["ema"] = a.ema;
      config["alpha"] = a.alpha;
    } else {
      config["samples"] = a.samples;
      if (!a.labels.empty()) config["labels"] = a.labels;
    }
    write_json(a.report, {{"samples", gen.to_json()}, {"floor", floor.to_json()}, {"features", extractor},
                          {"config", config}, {"seconds", seconds}});
    std::cout << "report -> " << a.report << "\n";
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  static EvalArgs a;
  auto* cmd = app.add_subcommand("eval", "FID / KID / precision-recall / class accuracy of generated images, next "
                                          "to the data floor (real train vs real test)");
  cmd->add_option("--ckpt", a.ckpt, "Checkpoint to sample from");
  cmd->add_flag("--ema", a.ema, "Use the EMA generator of --ckpt");
  cmd->add_option("--alpha", a.alpha, "Guidance scale (CFG-trained generators)")->capture_default_str();
  cmd->add_option("--samples", a.samples, "Images instead of a checkpoint: N x 1 x 28 x 28 .npy in [-1, 1]");
  cmd->add_option("--labels", a.labels, "Requested classes of --samples: N int64 .npy (enables class accuracy)");
  cmd->add_option("--n", a.n, "Samples to generate (with --samples: use the first n)")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Noise seed of the generated samples")->capture_default_str();
  cmd->add_option("--dataset", a.dataset, "mnist or fashion-mnist (default: the checkpoint's, else mnist)");
  cmd->add_option("--data-dir", a.data_dir, "Dataset directory (default $DRIFTX_DATA_DIR or ./data)");
  cmd->add_option("--models-dir", a.models_dir, "Evaluator directory (default $DRIFTX_MODELS_DIR or <repo>/models)");
  cmd->add_option("--fid-features", a.fid_features, "TorchScript module images -> features to use instead of the "
                                                     "evaluator (class accuracy still uses the evaluator)");
  cmd->add_option("--batch", a.batch, "Images per forward pass")->capture_default_str();
  cmd->add_option("--kid-subsets", a.kid_subsets, "KID subsets")->capture_default_str();
  cmd->add_option("--kid-subset-size", a.kid_subset_size, "KID subset size (capped at n)")->capture_default_str();
  cmd->add_option("--k", a.k, "Nearest neighbour k of precision / recall")->capture_default_str();
  cmd->add_option("--report", a.report, "Write every number and the configuration as JSON");
  cmd->callback([cmd] {
    a.n_given = cmd->count("--n") > 0;
    run_eval(a);
  });
}

}  // namespace driftx::cli
