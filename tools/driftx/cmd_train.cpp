// driftx train: a one-step generator with the standard or the DriftXpress field.
#include <csignal>
#include <filesystem>
#include <iostream>

#include <fmt/ranges.h>

#include "commands.h"
#include "driftx/distributed.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/parse.h"
#include "driftx/runtime.h"
#include "driftx/train.h"

namespace driftx::cli {

namespace {

std::atomic<bool> g_stop{false};
void on_sigint(int) { g_stop.store(true); }

struct TrainArgs {
  TrainConfig config;
  std::string temps, time_budget, config_file, dist_timeout = "120s";
  bool unconditional = false, resume = false;
  int ranks = 0;
};

}  // namespace

void add_train_command(CLI::App& app) {
  static TrainArgs a;
  auto& c = a.config;
  auto* cmd = app.add_subcommand("train", "Train a one-step generator (Ctrl-C saves a checkpoint and exits)");
  cmd->add_option("--config", a.config_file, "JSON configuration (e.g. a run's config.json); flags override it");
  cmd->add_option("--dataset", c.dataset, "mnist or fashion-mnist")->capture_default_str();
  cmd->add_option("--data-dir", c.data_dir, "Dataset directory (default $DRIFTX_DATA_DIR or ./data)");
  cmd->add_option("--method", c.method, "driftxpress (projected field) or standard (exact field)")->capture_default_str();
  cmd->add_option("--features", c.features, "Feature groups, one loss each: multiscale or a list of pixels,pool2,pool4,"
                                            "mean_std,patch2_stats,patch4_stats,sq_mean")->capture_default_str();
  cmd->add_flag("--unconditional", a.unconditional, "Unconditional generator (one class per step)");
  cmd->add_option("--classes-per-step", c.classes_per_step, "N_c: classes per step")->capture_default_str();
  cmd->add_option("--gen-per-class", c.gen_per_class, "N_neg: generated samples per class per step")->capture_default_str();
  cmd->add_option("--pos-per-class", c.pos_per_class, "N_pos: real positives per class per step (standard)")->capture_default_str();
  cmd->add_option("--temps", a.temps, fmt::format("Comma-separated temperatures (default: driftxpress {}; standard {})",
                                                  fmt::join(default_temperatures("driftxpress"), ","),
                                                  fmt::join(default_temperatures("standard"), ",")));
  cmd->add_flag("--guidance", c.guidance, "Train with classifier-free guidance (alpha-conditioned generator; sample with --alpha)");
  cmd->add_option("--guidance-negatives", c.guidance_negatives, "U: unconditional real negatives per class (standard; "
                                                                "driftxpress uses their expectation)")->capture_default_str();
  cmd->add_option("--alpha-max", c.alpha_max, "Guidance scales alpha are drawn from [1, alpha-max]")->capture_default_str();
  cmd->add_option("--alpha-power", c.alpha_power, "k in p(alpha) ~ alpha^-k")->capture_default_str();
  cmd->add_option("--affinity-floor", c.affinity_floor, "Affinity floor of the standard field")->capture_default_str();
  cmd->add_option("--landmark-strategy", c.landmark_strategy, "Landmark selection (driftxpress)")->capture_default_str();
  cmd->add_option("--landmarks", c.landmarks, "Total landmarks per feature group (driftxpress)")->capture_default_str();
  cmd->add_option("--ridge", c.ridge, "Nystrom ridge (driftxpress)")->capture_default_str();
  cmd->add_option("--repulsion", c.repulsion, "exact or projected (driftxpress)")->capture_default_str();
  cmd->add_option("--cache-dir", c.cache_dir, "Where data summaries are cached (default: <out>/../cache)");
  cmd->add_option("--noise-dim", c.noise_dim, "Generator noise dimension")->capture_default_str();
  cmd->add_option("--width", c.width, "Generator width (channels of the first feature map)")->capture_default_str();
  cmd->add_option("--lr", c.lr, fmt::format("AdamW learning rate, betas 0.9, 0.95 (0: the method's default, driftxpress {:g}, "
                                            "standard {:g})", default_learning_rate("driftxpress"),
                                            default_learning_rate("standard")))->capture_default_str();
  cmd->add_option("--warmup", c.warmup_steps, "Linear learning-rate warm-up steps")->capture_default_str();
  cmd->add_option("--weight-decay", c.weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--grad-clip", c.grad_clip, "Gradient norm clip (0 = off)")->capture_default_str();
  cmd->add_option("--ema", c.ema, "EMA decay of the generator")->capture_default_str();
  cmd->add_option("--steps", c.steps, "Stop after N steps (0 = no limit)")->capture_default_str();
  cmd->add_option("--time-budget", a.time_budget, "Stop at a wall-clock deadline, e.g. 20m (includes precompute)");
  cmd->add_option("--log-every", c.log_every, "Log and progress every N steps")->capture_default_str();
  cmd->add_option("--sample-every", c.sample_every, "PNG sample grid every N steps (0 = only at the end)")->capture_default_str();
  cmd->add_option("--checkpoint-every", c.checkpoint_every, "Checkpoint every N steps")->capture_default_str();
  cmd->add_option("--out", c.out_dir, "Run directory (config.json, log.jsonl, checkpoint.pt, samples/)")->capture_default_str();
  cmd->add_flag("--resume", a.resume, "Continue from <out>/checkpoint.pt");
  cmd->add_option("--seed", c.seed, "Seed (same seed + config = same numbers)")->capture_default_str();
  cmd->add_option("--device", c.device, "cpu, cuda or auto (with several ranks, cuda means cuda:LOCAL_RANK)")->capture_default_str();
  cmd->add_option("--ranks", a.ranks, "Data-parallel ranks inside this process, as threads sharing the cores (0: one "
                                      "per core, the largest that divides the classes per step; 1: off). Ignored "
                                      "under driftx launch / torchrun, which set the ranks")->capture_default_str();
  cmd->add_option("--dist-timeout", a.dist_timeout, "Several ranks (RANK/WORLD_SIZE set, e.g. by driftx launch): how long "
                                                    "to wait for the rendezvous or a collective before failing")->capture_default_str();
  cmd->callback([cmd] {
    TrainConfig config = a.config;
    if (!a.config_file.empty()) {
      // File first, then every flag given explicitly on the command line wins.
      auto merged = TrainConfig::from_json(read_json(a.config_file)).to_json();
      const auto flags = a.config.to_json(), defaults = TrainConfig{}.to_json();
      for (auto& [key, value] : flags.items())
        if (value != defaults[key]) merged[key] = value;
      config = TrainConfig::from_json(merged);
    }
    if (!a.temps.empty()) config.temperatures = parse_temperatures(a.temps);
    if (a.unconditional) config.conditional = false;
    if (!a.time_budget.empty()) config.time_budget_s = parse_duration(a.time_budget);
    if (config.steps == 0 && config.time_budget_s == 0)
      fail("no stopping rule: give --steps N or --time-budget T (e.g. 10m)");
    config.validate();  // once, before any rank starts: one error line, nothing loaded
    std::signal(SIGINT, on_sigint);
    std::signal(SIGTERM, on_sigint);
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(parse_duration(a.dist_timeout, "--dist-timeout") * 1e3));
    DRIFTX_CHECK(a.ranks >= 0, "--ranks must be >= 0 (0: one per core), got {}", a.ranks);
    // One process per rank (torchrun conventions), or, without RANK/WORLD_SIZE, ranks as threads of
    // this process: on a small CPU machine N ranks x 1 thread train faster than 1 rank x N threads.
    const bool launched = DistEnv::from_env().world_size > 1;
    std::vector<std::shared_ptr<Communicator>> comms;
    if (launched) {
      comms.push_back(Communicator::from_env(timeout, parse_device(config.device)));
    } else {
      const int64_t classes = config.conditional ? config.classes_per_step : 1;
      const int world = a.ranks > 0 ? a.ranks : (parse_device(config.device).is_cuda() ? 1 : local_ranks_for(classes, at::get_num_threads()));
      DRIFTX_CHECK(world == 1 || !parse_device(config.device).is_cuda(),
                   "--ranks {} with --device {}: ranks inside one process are for CPUs; use driftx launch --nproc {} "
                   "(one process per GPU)", world, config.device, world);
      comms = connect_local_ranks(world, timeout);
    }
    const int world = launched ? 1 : static_cast<int>(comms.size());
    on_local_threads(world, [&](int r) {
      auto comm = comms[r];
      TrainConfig rank_config = config;
      if (comm->world_size() > 1 && parse_device(config.device).is_cuda())
        rank_config.device = fmt::format("cuda:{}", comm->env().local_rank);
      Trainer trainer(rank_config, a.resume, comm);
      if (comm->world_size() > 1 && comm->is_main())
        std::cout << fmt::format("distributed: {} ranks ({}{}), {} threads per rank, {} classes per rank per step\n",
                                 comm->world_size(), comm->backend(), launched ? "" : ", threads of this process",
                                 at::get_num_threads(), rank_config.classes_per_step / comm->world_size());
      if (comm->is_main())
        std::cout << fmt::format("training {} on {} ({}), out {} (precompute {:.1f}s)\n", rank_config.method,
                                 rank_config.dataset, rank_config.conditional ? "class-conditional" : "unconditional",
                                 rank_config.out_dir, trainer.precompute_seconds());
      trainer.run(&g_stop);
    });
  });
}

}  // namespace driftx::cli
