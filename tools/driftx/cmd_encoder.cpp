// driftx encoder train: the self-supervised feature encoder of the "encoder:<dataset>" feature groups.
#include <algorithm>
#include <chrono>
#include <iostream>

#include "commands.h"
#include "driftx/data.h"
#include "driftx/encoder.h"
#include "driftx/error.h"

namespace driftx::cli {

namespace {

struct EncoderArgs {
  std::string dataset = "mnist", data_dir, models_dir, out;
  EncoderTrainOptions options;
  LinearProbeOptions probe;
};

void run_train(const EncoderArgs& a) {
  const auto names = dataset_names();
  DRIFTX_CHECK(std::find(names.begin(), names.end(), a.dataset) != names.end(), "--dataset {}: use mnist or fashion-mnist",
               a.dataset);
  const std::string out = a.out.empty() ? encoder_weights_path(a.dataset, a.models_dir) : a.out;
  check_encoder_destination(out);  // before minutes of training
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto train = load_dataset(a.dataset, "train", a.data_dir);
  auto options = a.options;
  options.progress = [&](int64_t epoch, double loss) {
    std::cout << fmt::format("epoch {}/{}  masked reconstruction loss {:.5f}  {:.0f}s\n", epoch, options.epochs, loss, since())
              << std::flush;
  };
  std::vector<double> losses;
  // Only the images: the labels of the training split never reach the encoder.
  auto model = train_encoder(train.images, options, &losses);
  const double train_seconds = since();
  auto test = load_dataset(a.dataset, "test", a.data_dir);
  const double rec_masked = reconstruction_error(model, test.images, options.mask_ratio, options.patch, 12345);
  const double rec_clean = reconstruction_error(model, test.images, 0.0, options.patch, 12345);
  const auto probe = linear_probe(model, train, test, a.probe);
  const nlohmann::json metadata = {
      {"objective", "masked autoencoding: MSE of the reconstruction of all pixels from the image with a random "
                    "mask_ratio of its patch x patch cells set to 0; trained on the training split's images only, no labels"},
      {"config", {{"epochs", options.epochs}, {"batch", options.batch}, {"lr", options.lr}, {"lr_schedule", "cosine to 0, AdamW wd 1e-4"},
                  {"mask_ratio", options.mask_ratio}, {"patch", options.patch}, {"seed", options.seed},
                  {"train_images", train.size()}, {"threads", at::get_num_threads()}}},
      {"train_seconds", train_seconds},
      {"steps", static_cast<int64_t>(losses.size())},
      {"final_train_loss", losses.empty() ? 0.0 : losses.back()},
      {"reconstruction_mse_test_masked", rec_masked},
      {"reconstruction_mse_test_clean", rec_clean},
      {"reconstruction_note", "per-pixel MSE on all 10k test images in [-1, 1]; masked: same mask ratio as training, mask seed 12345"},
      {"linear_probe", {{"test_accuracy", probe.test_accuracy}, {"train_accuracy", probe.train_accuracy},
                        {"train_samples", probe.train_samples}, {"test_samples", probe.test_samples},
                        {"feature_dim", probe.feature_dim}, {"features", probe.features},
                        {"fit", fmt::format("softmax regression, AdamW lr {} wd {}, {} epochs of batch {}, seed {}",
                                            a.probe.lr, a.probe.weight_decay, a.probe.epochs, a.probe.batch, a.probe.seed)}}},
      {"libtorch", TORCH_VERSION}};
  const std::string sha = save_encoder(model, a.dataset, metadata, out);
  std::cout << fmt::format("{} encoder: {:.0f}s training on {} threads, test reconstruction MSE {:.5f} masked / {:.5f} clean, "
                           "linear probe {:.2f}% on {} test images\n-> {} (sha256 {})\n",
                           a.dataset, train_seconds, at::get_num_threads(), rec_masked, rec_clean, 100 * probe.test_accuracy,
                           probe.test_samples, out, sha);
}

}  // namespace

void add_encoder_command(CLI::App& app) {
  static EncoderArgs a;
  auto* cmd = app.add_subcommand("encoder", "The self-supervised feature encoder of the encoder:<dataset> feature groups");
  cmd->require_subcommand(1);
  auto* train = cmd->add_subcommand("train", "Train it as a masked autoencoder on the training images (no labels; "
                                             "deterministic for a seed and thread count) and write models/encoder-<dataset>.pt and .json");
  train->add_option("--dataset", a.dataset, "mnist or fashion-mnist")->capture_default_str();
  train->add_option("--out", a.out, "Weights file (.pt; the .json goes beside it); default <models-dir>/encoder-<dataset>.pt");
  train->add_option("--epochs", a.options.epochs, "Epochs of AdamW")->capture_default_str();
  train->add_option("--batch", a.options.batch, "Batch size")->capture_default_str();
  train->add_option("--lr", a.options.lr, "Peak learning rate (cosine-decayed)")->capture_default_str();
  train->add_option("--mask-ratio", a.options.mask_ratio, "Fraction of 4x4 input patches blanked")->capture_default_str();
  train->add_option("--max-steps", a.options.max_steps, "Stop after this many steps (0: all epochs)")->capture_default_str();
  train->add_option("--seed", a.options.seed, "Seed of weights, batch order and masks")->capture_default_str();
  train->add_option("--probe-samples", a.probe.train_samples, "Linear probe: training images it is fitted on")->capture_default_str();
  train->add_option("--data-dir", a.data_dir, "Dataset directory (default $DRIFTX_DATA_DIR or ./data)");
  train->add_option("--models-dir", a.models_dir, "Output directory when --out is not given (default $DRIFTX_MODELS_DIR or <repo>/models)");
  train->callback([] { run_train(a); });
}

}  // namespace driftx::cli
