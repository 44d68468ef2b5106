// driftx sample / driftx export: use a trained checkpoint.
#include <iostream>
#include <sstream>

#include "commands.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/image_io.h"
#include "driftx/npy.h"
#include "driftx/train.h"

namespace driftx::cli {

namespace {

struct SampleArgs {
  std::string ckpt, out;
  int64_t n = 64, cls = -1, columns = 0;
  double alpha = 1.0;
  bool ema = false;
  uint64_t seed = 0;
};

constexpr int64_t kMaxSamples = 1000000;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void run_sample(const SampleArgs& a) {
  // The samples are held in memory (and in one .npy or PNG): 1e6 MNIST images are 3.1 GB already.
  DRIFTX_CHECK(a.n >= 1 && a.n <= kMaxSamples, "--n must be in [1, {}], got {}", kMaxSamples, a.n);
  check_guidance_scale(a.alpha);
  DRIFTX_CHECK(ends_with(a.out, ".png") || ends_with(a.out, ".npy"), "--out must end in .png (grid) or .npy (array)");
  GeneratorConfig gc;
  auto g = load_generator(a.ckpt, a.ema, &gc);
  torch::NoGradGuard no_grad;
  auto rng = at::detail::createCPUGenerator(a.seed);
  auto z = torch::randn({a.n, gc.noise_dim}, rng);
  torch::Tensor labels, alpha;
  if (gc.num_classes > 0) {
    DRIFTX_CHECK(a.cls < gc.num_classes, "--class {} but the model has {} classes", a.cls, gc.num_classes);
    // Without --class: classes in turn, so a grid shows every class.
    labels = a.cls >= 0 ? torch::full({a.n}, a.cls, torch::kLong) : torch::arange(a.n) % gc.num_classes;
  } else {
    DRIFTX_CHECK(a.cls < 0, "--class given but the checkpoint's generator is unconditional");
  }
  if (gc.alpha_conditioning) alpha = torch::full({a.n}, a.alpha);
  else DRIFTX_CHECK(a.alpha == 1.0, "--alpha given but the generator was trained without guidance");
  auto images = g->forward(z, labels, alpha);
  if (ends_with(a.out, ".npy")) {
    write_npy(a.out, images);
  } else {
    int64_t cols = a.columns > 0 ? a.columns : (gc.num_classes > 0 && a.cls < 0 ? gc.num_classes : 8);
    write_png_grid(a.out, images, cols);
  }
  std::cout << fmt::format("{} samples ({}) -> {}\n", a.n, a.ema ? "EMA" : "raw", a.out);
}

}  // namespace

void add_sample_command(CLI::App& app) {
  static SampleArgs a;
  auto* cmd = app.add_subcommand("sample", "Generate samples from a checkpoint in one forward pass");
  cmd->add_option("--ckpt", a.ckpt, "Checkpoint (run directory's checkpoint.pt)")->required();
  cmd->add_option("--n", a.n, "Number of samples")->capture_default_str();
  cmd->add_option("--class", a.cls, "Class to generate (conditional models; default: cycle through classes)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--alpha", a.alpha, "Guidance scale alpha (CFG-trained models)")->capture_default_str();
  cmd->add_flag("--ema", a.ema, "Use the EMA generator");
  cmd->add_option("--columns", a.columns, "Images per grid row (default: one column per class)")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a.seed, "Noise seed")->capture_default_str();
  cmd->add_option("--out", a.out, "grid.png or samples.npy (N x C x H x W in [-1, 1])")->required();
  cmd->callback([] { run_sample(a); });

  static std::string ckpt, out;
  static bool ema = false;
  auto* exp = app.add_subcommand("export", "Export the generator as TorchScript (torch.jit.load in Python)");
  exp->add_option("--ckpt", ckpt, "Checkpoint")->required();
  exp->add_option("--out", out, "Output TorchScript file, e.g. generator.pt")->required();
  exp->add_flag("--ema", ema, "Export the EMA generator");
  exp->callback([] {
    GeneratorConfig gc;
    auto g = load_generator(ckpt, ema, &gc);
    // In memory first, then temp + rename: a full disk leaves the previous file whole.
    std::ostringstream bytes;
    export_generator(g).save(bytes);
    write_file_atomic(out, bytes.str());
    std::cout << fmt::format("exported {} generator -> {}  (python: g = torch.jit.load('{}'); x = g(torch.randn(n, {}){}))\n",
                             ema ? "EMA" : "raw", out, out, gc.noise_dim,
                             gc.num_classes > 0 ? ", torch.tensor(labels)" : "");
  });
}

}  // namespace driftx::cli
