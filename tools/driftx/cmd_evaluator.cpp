// driftx evaluator train: the fixed classifier whose features FID / KID / precision-recall use.
#include <chrono>
#include <iostream>

#include "commands.h"
#include "driftx/data.h"
#include "driftx/error.h"
#include "driftx/evaluator.h"

namespace driftx::cli {

namespace {

struct EvaluatorArgs {
  std::string dataset = "mnist", data_dir, models_dir;
  EvaluatorTrainOptions options;
};

void run_train(const EvaluatorArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  auto train = load_dataset(a.dataset, "train", a.data_dir);
  auto test = load_dataset(a.dataset, "test", a.data_dir);
  auto options = a.options;
  options.progress = [&](int64_t epoch, double loss) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << fmt::format("epoch {}/{}  train loss {:.4f}  {:.0f}s\n", epoch, options.epochs, loss, s) << std::flush;
  };
  auto model = train_evaluator(train, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double accuracy = evaluator_accuracy(model, test.images, test.labels);
  const std::string sha = save_evaluator(model, a.dataset,
                                         {{"test_accuracy", accuracy},
                                          {"epochs", options.epochs},
                                          {"seed", options.seed},
                                          {"batch", options.batch},
                                          {"lr", options.lr},
                                          {"threads", at::get_num_threads()},
                                          {"train_seconds", seconds},
                                          {"libtorch", TORCH_VERSION}},
                                         a.models_dir);
  std::cout << fmt::format("{} evaluator: test accuracy {:.2f}% ({} test images), {:.0f}s on {} threads\n"
                           "-> {} (sha256 {})\n",
                           a.dataset, 100 * accuracy, test.size(), seconds, at::get_num_threads(),
                           evaluator_weights_path(a.dataset, a.models_dir), sha);
}

}  // namespace

void add_evaluator_command(CLI::App& app) {
  static EvaluatorArgs a;
  auto* cmd = app.add_subcommand("evaluator", "The fixed evaluator network of FID / KID / precision-recall");
  cmd->require_subcommand(1);
  auto* train = cmd->add_subcommand("train", "Train it (deterministic for a seed and thread count) and write "
                                             "models/evaluator-<dataset>.pt and .json");
  train->add_option("--dataset", a.dataset, "mnist or fashion-mnist")->capture_default_str();
  train->add_option("--epochs", a.options.epochs, "Epochs of Adam")->capture_default_str();
  train->add_option("--batch", a.options.batch, "Batch size")->capture_default_str();
  train->add_option("--lr", a.options.lr, "Peak learning rate (cosine-decayed)")->capture_default_str();
  train->add_option("--seed", a.options.seed, "Seed of weights, batch order and dropout")->capture_default_str();
  train->add_option("--data-dir", a.data_dir, "Dataset directory (default $DRIFTX_DATA_DIR or ./data)");
  train->add_option("--models-dir", a.models_dir, "Output directory (default $DRIFTX_MODELS_DIR or <repo>/models)");
  train->callback([] { run_train(a); });
}

}  // namespace driftx::cli
