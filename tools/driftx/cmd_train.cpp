// driftx train: a one-step generator with the standard or the DriftXpress field.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include <fmt/ranges.h>

#include "commands.h"
#include "driftx/distributed.h"
#include "driftx/error.h"
#include "driftx/files.h"
#include "driftx/interrupt.h"
#include "driftx/parse.h"
#include "driftx/runtime.h"
#include "driftx/train.h"

namespace driftx::cli {

namespace {

struct TrainArgs {
  TrainConfig config;
  std::string temps, time_budget, config_file, dist_timeout = "120s";
  bool unconditional = false, resume = false;
  int ranks = 0;
};

// Each flag of `train` that sets a configuration key, with the key's name in config.json: "--gen-per-class"
// sets gen_per_class, and a few flags are named otherwise.
std::vector<std::pair<CLI::Option*, std::string>> configuration_flags(CLI::App& cmd) {
  static const std::map<std::string, std::string> renamed{{"--unconditional", "conditional"}, {"--temps", "temperatures"},
                                                          {"--warmup", "warmup_steps"}, {"--time-budget", "time_budget_s"},
                                                          {"--out", "out_dir"}};
  static const std::set<std::string> not_keys{"--help", "--config", "--resume", "--ranks", "--dist-timeout"};
  const auto keys = TrainConfig{}.to_json();
  std::vector<std::pair<CLI::Option*, std::string>> out;
  for (auto* option : cmd.get_options()) {
    if (option->get_lnames().empty()) continue;
    const std::string flag = "--" + option->get_lnames().front();
    if (not_keys.count(flag)) continue;
    std::string key = renamed.count(flag) ? renamed.at(flag) : flag.substr(2);
    std::replace(key.begin(), key.end(), '-', '_');
    DRIFTX_CHECK(keys.contains(key), "driftx train: flag {} names no configuration key (add it to configuration_flags)", flag);
    out.emplace_back(option, key);
  }
  return out;
}

// The configuration a run uses. Without --config or --resume: the flags. With --config FILE: the file,
// then every flag given on the command line (CLI11 counts them, so a flag equal to its default wins
// too). With --resume: <out>/config.json (the checkpoint's configuration for an older directory), then
// the run-control flags given; a given flag that would change what is learned is refused.
TrainConfig resolve_config(TrainArgs& a, const std::vector<std::pair<CLI::Option*, std::string>>& keyed,
                           CLI::Option* ranks_option) {
  TrainConfig flags = a.config;
  if (!a.temps.empty()) flags.temperatures = parse_temperatures(a.temps);
  if (a.unconditional) flags.conditional = false;
  if (!a.time_budget.empty()) flags.time_budget_s = parse_duration(a.time_budget);
  if (!a.resume && a.config_file.empty()) return flags;
  nlohmann::json base;
  std::string source;
  if (a.resume) {
    DRIFTX_CHECK(a.config_file.empty(), "--resume reads the run's own configuration ({}/config.json): drop --config",
                 flags.out_dir);
    const std::string ckpt = flags.out_dir + "/checkpoint.pt", file = flags.out_dir + "/config.json";
    DRIFTX_CHECK(std::filesystem::exists(ckpt), "--resume: no checkpoint at '{}' (was the run started with this --out?)", ckpt);
    source = std::filesystem::exists(file) ? file : ckpt;
    base = source == file ? read_json(file) : checkpoint_config(ckpt).to_json();
    if (ranks_option->count() == 0 && base.contains("ranks") && base["ranks"].is_number_integer())
      a.ranks = base["ranks"].get<int>();  // the same rank count: bit-for-bit continuation
  } else {
    source = a.config_file;
    base = read_json(a.config_file);
  }
  try {
    base = TrainConfig::from_json(base).to_json();  // unknown keys refused by name
  } catch (const Error& e) {
    fail("{}: {}", source, e.what());
  }
  const auto given = flags.to_json();
  const auto& learned = TrainConfig::learned_keys();
  std::vector<std::string> conflicts;
  for (const auto& [option, key] : keyed) {
    if (option->count() == 0) continue;
    if (a.resume && std::find(learned.begin(), learned.end(), key) != learned.end() && given[key] != base[key])
      conflicts.push_back(fmt::format("{} {} (the run has {})", option->get_name(), given[key].dump(), base[key].dump()));
    base[key] = given[key];
  }
  DRIFTX_CHECK(conflicts.empty(), "--resume: {} would change what {} trained; drop {} to continue the run as it was",
               fmt::join(conflicts, ", "), source, conflicts.size() == 1 ? "it" : "them");
  if (a.resume) base["out_dir"] = flags.out_dir;  // the directory given, wherever the run was first written
  return TrainConfig::from_json(base);
}

}  // namespace

void add_train_command(CLI::App& app) {
  static TrainArgs a;
  auto& c = a.config;
  auto* cmd = app.add_subcommand("train", "Train a one-step generator (Ctrl-C saves a checkpoint and exits with 130)");
  cmd->add_option("--config", a.config_file, "JSON configuration (e.g. a run's config.json); flags override it");
  cmd->add_option("--dataset", c.dataset, "mnist or fashion-mnist")->capture_default_str();
  cmd->add_option("--data-dir", c.data_dir, "Dataset directory (default $DRIFTX_DATA_DIR or ./data)");
  cmd->add_option("--method", c.method, "driftxpress (projected field) or standard (exact field)")->capture_default_str();
  cmd->add_option("--features", c.features, "Feature groups, one loss each: multiscale or a list of pixels,pool2,pool4,"
                                            "mean_std,patch2_stats,patch4_stats,sq_mean, encoder:DATASET[/GROUP] "
                                            "(the shipped encoder's groups), torchscript:PATH")->capture_default_str();
  cmd->add_flag("--unconditional", a.unconditional, "Unconditional generator (one class per step)");
  cmd->add_option("--classes-per-step", c.classes_per_step, "N_c: classes per step")->capture_default_str();
  cmd->add_option("--gen-per-class", c.gen_per_class, "N_neg: generated samples per class per step")->capture_default_str();
  cmd->add_option("--pos-per-class", c.pos_per_class, "N_pos: real positives per class per step (standard)")->capture_default_str();
  cmd->add_option("--positives", c.positives, "Standard: positives' features gathered from a cache of the training set's "
                                              "features (cached) or encoded every step (encode)")->capture_default_str();
  cmd->add_option("--per-location", c.per_location, "Groups of several vectors (encoder locations, patches): one kernel "
                                                    "per vector (true) or the flattened row as one vector (false)")
      ->capture_default_str();
  cmd->add_option("--temps", a.temps, fmt::format("Comma-separated temperatures (default: driftxpress {}; standard {})",
                                                  fmt::join(default_temperatures("driftxpress"), ","),
                                                  fmt::join(default_temperatures("standard"), ",")));
  cmd->add_flag("--guidance", c.guidance, "Train with classifier-free guidance (alpha-conditioned generator; sample with --alpha)");
  cmd->add_option("--guidance-negatives", c.guidance_negatives, "U: unconditional real negatives per class (standard; "
                                                                "driftxpress uses their expectation)")->capture_default_str();
  cmd->add_option("--alpha-max", c.alpha_max, "Guidance scales alpha are drawn from [1, alpha-max]")->capture_default_str();
  cmd->add_option("--alpha-power", c.alpha_power, "k in p(alpha) ~ alpha^-k")->capture_default_str();
  cmd->add_option("--matmul-dtype", c.matmul_dtype, "Both fields: products with kernel values in float32 or bf16 "
                                                    "(distances stay float32)")->capture_default_str();
  cmd->add_option("--affinity-floor", c.affinity_floor, "Affinity floor of the standard field")->capture_default_str();
  cmd->add_option("--landmark-strategy", c.landmark_strategy, "Landmark selection (driftxpress)")->capture_default_str();
  cmd->add_option("--landmarks", c.landmarks, "Total landmarks per feature group (driftxpress)")->capture_default_str();
  cmd->add_option("--landmark-shards", c.landmark_shards, "Block-diagonal Nystrom (driftxpress): K class shards with "
                                                          "their own landmarks and map, K dividing the classes (1: one "
                                                          "shared map)")->capture_default_str();
  cmd->add_option("--vector-maps", c.vector_maps, "Driftxpress, class-conditional: one map per (class, vector) of each "
                                                  "group (per-location groups: per class and location), --landmarks per "
                                                  "vector, so --landmarks / classes per map")->capture_default_str();
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
  cmd->add_flag("--resume", a.resume, "Continue from <out>/checkpoint.pt with the run's config.json (flags given may "
                                      "change run control: --steps, --time-budget, intervals, --device)");
  cmd->add_option("--seed", c.seed, "Seed (same seed + config = same numbers)")->capture_default_str();
  cmd->add_option("--device", c.device, "cpu, cuda or auto (with several ranks, cuda means cuda:LOCAL_RANK)")->capture_default_str();
  auto* ranks_option =
      cmd->add_option("--ranks", a.ranks, "Data-parallel ranks inside this process, as threads sharing the cores (0: one "
                                          "per core, the largest that divides the classes per step; 1: off). Ignored "
                                          "under driftx launch / torchrun, which set the ranks")->capture_default_str();
  cmd->add_option("--dist-timeout", a.dist_timeout, "Several ranks (RANK/WORLD_SIZE set, e.g. by driftx launch): how long "
                                                    "to wait for the rendezvous or a collective before failing")->capture_default_str();
  cmd->callback([cmd, ranks_option] {
    TrainConfig config = resolve_config(a, configuration_flags(*cmd), ranks_option);
    if (config.steps == 0 && config.time_budget_s == 0)
      fail("no stopping rule: give --steps N or --time-budget T (e.g. 10m)");
    config.validate();  // once, before any rank starts: one error line, nothing loaded
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
    int64_t final_step = 0;
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
      // Ctrl-C / SIGTERM while training: finish the step, save a checkpoint, then stop (exit 130 / 143).
      GracefulStop graceful;
      trainer.run(&stop_flag());
      if (r == 0) final_step = trainer.step_count();
    });
    if (const int sig = interrupt_signal())
      throw Interrupted(sig, fmt::format("interrupted by {} at step {}: checkpoint saved in {}; continue with "
                                         "driftx train --out {} --resume", signal_name(sig), final_step,
                                         config.out_dir, config.out_dir));
  });
}

}  // namespace driftx::cli
