// driftx bench vs-python: the C++ fields and training step against a PyTorch-in-Python implementation
// of the same computation (bench/python/, issue 12 item 1), on identical inputs, back to back.
//
// For every case this command builds the inputs in C++, writes them as .npy (the project's npy writer)
// together with the C++ outputs, and runs bench/python/driftx_bench.py on them. Timing alternates in
// rounds (C++ then Python, then Python then C++, ...), each side a warm-up then `--repeats` timed calls
// per round, so machine noise hits both alike; the headline is the median over all timed calls. The
// first Python run of a case also recomputes the outputs and reports the largest entry difference
// relative to the largest entry ("max rel diff") against the C++ outputs.
//
//  (a) standard field, one group, Gaussian inputs (as `driftx bench field-standard`)
//  (b) projected field query (ProjectedField::compute, folded summaries, exact repulsion), MNIST
//      features: summaries over a subset of the train set, class-major noisy test images as queries
//  (c) the whole training step of each method (Trainer::step vs the Python TrainStep); for
//      driftxpress the folded summaries are exported from fields built exactly as the trainer builds
//      them, and the check compares the trainer's own targets and loss on one fixed batch.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <torch/torch.h>

#include "bench_common.h"
#include "driftx/data.h"
#include "driftx/error.h"
#include "driftx/features.h"
#include "driftx/files.h"
#include "driftx/kernel.h"
#include "driftx/landmarks.h"
#include "driftx/npy.h"
#include "driftx/projected_field.h"
#include "driftx/standard_field.h"
#include "driftx/train.h"

namespace driftx::bench {

namespace fs = std::filesystem;

namespace {

struct Args {
  std::string standard = "256:256:784,1024:4096:784";  // N:P:D
  std::string projected = "250:1000:784,1000:2000:784";  // B:M:D (D: 784 pixels, 196 pool2, 49 pool4)
  std::string methods = "standard,driftxpress";
  std::string features = "pixels,pool2,pool4", temps = "0.02,0.05,0.2";
  std::string python, script, out = "runs/bench-vs-python", report, data_dir, matmul_dtype = "float32";
  int64_t width = 64, gen_per_class = 25, pos_per_class = 256, landmarks = 1000, real = 10000;
  int rounds = 3, repeats = 5, steps = 5, warmup = 1;
  uint64_t seed = 0;
  bool no_train = false, keep_files = false;
};

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string default_python() {
  if (const char* env = std::getenv("DRIFTX_PYTHON"); env && *env) return env;
  // Debian's python3-torch lives under /usr/bin/python3; a pyenv or venv python3 first on PATH may lack it.
  return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

std::string default_script() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto p = exe.parent_path().parent_path() / "bench" / "python" / "driftx_bench.py";
    if (fs::exists(p)) return p.string();
  }
  return "bench/python/driftx_bench.py";
}

// Runs a command, returns its stdout; stderr goes to ours. Throws with the command on failure.
std::string run_capture(const std::string& cmd) {
  FILE* pipe = popen(cmd.c_str(), "r");
  DRIFTX_CHECK(pipe, "vs-python: cannot run '{}'", cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  DRIFTX_CHECK(status == 0, "vs-python: the Python baseline failed (exit status {}): {}", status, cmd);
  return out;
}

nlohmann::json run_python(const Args& a, const std::string& sub_args) {
  const std::string cmd = fmt::format("{} {} {} --threads {} --warmup {}", quote(a.python), quote(a.script), sub_args,
                                      at::get_num_threads(), a.warmup);
  std::string out = run_capture(cmd);
  // The JSON object is the last line; anything printed before it is ignored.
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  const auto nl = out.rfind('\n');
  const std::string line = nl == std::string::npos ? out : out.substr(nl + 1);
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    fail("vs-python: no JSON object from '{}': {}", cmd, line);
  }
}

struct Row {
  std::string bench, shape;
  std::vector<double> ours_ms, python_ms, ours_round_ms, python_round_ms;
  double max_rel_diff = -1;  // < 0: not checked
  nlohmann::json diffs;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Alternates the two sides for `rounds` rounds. ours(): one round of C++ timings; python(first): one
// Python run (the first also checks the outputs).
void interleave(Row& row, int rounds, const std::function<std::vector<double>()>& ours,
                const std::function<nlohmann::json(bool first)>& python) {
  bool first_python = true;
  auto do_ours = [&] {
    auto v = ours();
    row.ours_round_ms.push_back(median(v));
    row.ours_ms.insert(row.ours_ms.end(), v.begin(), v.end());
  };
  auto do_python = [&] {
    auto j = python(first_python);
    if (first_python && j.contains("max_rel_diff")) {
      row.max_rel_diff = j["max_rel_diff"].get<double>();
      row.diffs = j["diffs"];
    }
    first_python = false;
    auto v = j["samples_ms"].get<std::vector<double>>();
    row.python_round_ms.push_back(median(v));
    row.python_ms.insert(row.python_ms.end(), v.begin(), v.end());
  };
  for (int r = 0; r < rounds; ++r) {
    std::cerr << "." << std::flush;
    if (r % 2 == 0) do_ours(), do_python();
    else do_python(), do_ours();
  }
}

// "0.52 0.61 0.70" (1, 5, 15 minutes) from /proc/loadavg: how busy the machine was around the run.
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  return (in >> a >> b >> c) ? a + " " + b + " " + c : std::string("unknown");
}

std::vector<std::array<int64_t, 3>> parse_triples(const std::string& text, const std::string& what) {
  std::vector<std::array<int64_t, 3>> out;
  if (text.empty()) return out;
  for (const auto& item : parse_name_list(text, what)) {
    std::array<int64_t, 3> t{};
    char c1 = 0, c2 = 0;
    std::istringstream in(item);
    DRIFTX_CHECK((in >> t[0] >> c1 >> t[1] >> c2 >> t[2]) && c1 == ':' && c2 == ':' && in.peek() == EOF &&
                     t[0] >= 2 && t[1] >= 1 && t[2] >= 1,
                 "{}: '{}' is not A:B:C with positive integers (e.g. 256:256:784)", what, item);
    out.push_back(t);
  }
  return out;
}

// The folded summaries the projected field's query step reads (ProjectedField::fold, SPEC §3 folded
// form), in the files drift_ref.ProjectedSummaries.load reads.
void write_folded(const ProjectedField& f, const std::string& dir, const std::string& prefix) {
  torch::NoGradGuard no_grad;
  DRIFTX_CHECK(f.layout().shards == 1, "vs-python: the Python baseline has no class sharding");
  make_dirs(dir);
  write_npy(dir + "/" + prefix + "landmarks.npy", f.map(0, 0).landmarks());
  const auto& temps = f.config().temperatures;
  for (size_t t = 0; t < temps.size(); ++t) {
    const auto& inv = f.map(0, t).inverse();
    const auto& sum = f.summary(0, t);
    auto ksum = torch::cat({sum.ksum, sum.ksum.sum(0, true)}, 0);
    auto kysum = torch::cat({sum.kysum, sum.kysum.sum(0, true)}, 0);
    write_npy(fmt::format("{}/{}fold_den_{}.npy", dir, prefix, t), torch::matmul(ksum, inv).to(torch::kFloat32));
    write_npy(fmt::format("{}/{}fold_num_{}.npy", dir, prefix, t), torch::matmul(inv, kysum).to(torch::kFloat32));
  }
  write_json(dir + "/" + prefix + "meta.json",
             {{"scale", f.scale()}, {"temperatures", temps}, {"eps", f.config().eps}, {"classes", f.layout().classes}});
}

std::string group_for_dim(int64_t D) {
  if (D == 784) return "pixels";
  if (D == 196) return "pool2";
  if (D == 49) return "pool4";
  fail("vs-python --projected: D must be 784 (pixels), 196 (pool2) or 49 (pool4) of MNIST, got {}", D);
}

Row bench_standard(const Args& a, const std::vector<double>& temps, int64_t N, int64_t P, int64_t D) {
  torch::NoGradGuard no_grad;
  const auto products = parse_product_precision(a.matmul_dtype);
  Row row{products == ProductPrecision::Float32 ? "standard field" : "standard field, ours bf16",
          fmt::format("N={} P={} D={}", N, P, D)};
  const std::string dir = fmt::format("{}/standard-{}-{}-{}", a.out, N, P, D);
  make_dirs(dir);
  torch::manual_seed(a.seed);
  auto X = torch::randn({1, N, D}), Yp = torch::randn({1, P, D});
  StandardFieldConfig cfg;
  cfg.temperatures = temps;
  cfg.products = products;
  const StandardField field(cfg);
  const StandardFieldInput in{X, Yp, {}, {}};
  auto r = field.compute(in);
  write_npy(dir + "/gen.npy", X);
  write_npy(dir + "/pos.npy", Yp);
  write_npy(dir + "/out_goal.npy", r.goal);
  write_npy(dir + "/out_drift.npy", r.drift);
  write_npy(dir + "/out_loss.npy", r.loss.reshape({1}));
  write_json(dir + "/meta.json", {{"temperatures", temps}, {"affinity_floor", cfg.affinity_floor}});
  auto call = [&] { (void)field.compute(in).loss.item<double>(); };
  interleave(
      row, a.rounds, [&] { return time_call(call, a.repeats, a.warmup).samples_ms; },
      [&](bool first) {
        return run_python(a, fmt::format("standard --inputs {} --repeats {}{}", quote(dir), a.repeats,
                                         first ? " --check" : ""));
      });
  if (!a.keep_files) fs::remove_all(dir);
  return row;
}

Row bench_projected(const Args& a, const std::vector<double>& temps, int64_t B, int64_t M, int64_t D) {
  torch::NoGradGuard no_grad;
  const std::string group = group_for_dim(D);
  DRIFTX_CHECK(B % 10 == 0, "vs-python --projected: B must be a multiple of the 10 classes, got {}", B);
  const auto products = parse_product_precision(a.matmul_dtype);
  Row row{products == ProductPrecision::Float32 ? "projected field query" : "projected field query, ours bf16",
          fmt::format("B={} M={} D={} ({})", B, M, D, group)};
  const std::string dir = fmt::format("{}/projected-{}-{}-{}", a.out, B, M, D);
  const auto train = load_dataset("mnist", "train", a.data_dir);
  const auto test = load_dataset("mnist", "test", a.data_dir);
  torch::Tensor real_labels;
  const auto real = dataset_features(seeded_subset(train, a.real, a.seed, &real_labels), group);
  DRIFTX_CHECK(M <= real.size(0), "vs-python --projected: M = {} exceeds the {} real samples (--real)", M, real.size(0));
  LandmarkConfig lc;
  lc.strategy = LandmarkStrategy::RandomPerClass;
  lc.total = M;
  lc.seed = a.seed;
  const auto idx = select_landmarks(real, real_labels, lc);
  ProjectedFieldConfig pc;
  pc.temperatures = temps;
  pc.products = products;
  const auto field = build_projected_field(real, real_labels, real.index_select(0, idx), real_labels.index_select(0, idx),
                                           ShardLayout{10, 1}, std::nullopt, pc);
  // Queries: B/10 test images per class, class-major (the trainer's layout), plus N(0, 0.3^2) noise.
  std::vector<torch::Tensor> imgs;
  for (int64_t c = 0; c < 10; ++c) imgs.push_back(test.images.index_select(0, test.class_index[c].narrow(0, 0, B / 10)));
  auto gen = at::detail::createCPUGenerator(a.seed + 1);
  auto images = torch::cat(imgs, 0);
  images = images + 0.3 * torch::randn(images.sizes(), gen);
  const auto x = image_features(images, group).contiguous();
  const auto labels = torch::arange(10, torch::kLong).repeat_interleave(B / 10);
  auto r = field.compute(x, labels);  // also folds the summaries (precompute, untimed)
  write_folded(field, dir, "");
  write_npy(dir + "/x.npy", x);
  write_npy(dir + "/labels.npy", labels);
  write_npy(dir + "/out_drift.npy", r.drift);
  write_npy(dir + "/out_target.npy", r.target);
  write_npy(dir + "/out_loss.npy", r.loss.reshape({1}));
  auto call = [&] { (void)field.compute(x, labels).loss.item<double>(); };
  interleave(
      row, a.rounds, [&] { return time_call(call, a.repeats, a.warmup).samples_ms; },
      [&](bool first) {
        return run_python(a, fmt::format("projected --inputs {} --repeats {}{}", quote(dir), a.repeats,
                                         first ? " --check" : ""));
      });
  if (!a.keep_files) fs::remove_all(dir);
  return row;
}

// Fields built exactly as Trainer's constructor builds them (same landmarks, scale, summaries), exported.
void export_trainer_summaries(const Trainer& trainer, const std::string& dir) {
  const auto& c = trainer.config();
  const auto data = load_dataset(c.dataset, "train", c.data_dir);
  const auto names = parse_feature_groups(c.features);
  const auto all = dataset_features(data.images, names);  // one pass for every group, as the trainer (on the CPU)
  for (size_t g = 0; g < names.size(); ++g) {
    const auto& name = names[g];
    const auto& feats = all[g];
    LandmarkConfig lc;
    lc.strategy = parse_landmark_strategy(c.landmark_strategy);
    lc.total = c.landmarks;
    lc.seed = c.seed;
    const auto idx = select_landmarks(feats, data.labels, lc);
    const auto U = feats.index_select(0, idx);
    ProjectedFieldConfig pc;
    pc.temperatures = c.temperatures;
    pc.ridge = c.ridge;
    pc.repulsion = parse_repulsion(c.repulsion);
    ProjectedField field(U, data.labels.index_select(0, idx), ShardLayout{data.num_classes, 1},
                         projected_feature_scale(feats, U), pc);
    field.add_data(feats, data.labels);
    write_folded(field, dir, name + "_");
  }
}

// The trainer's generator, one fixed class-major batch, and the trainer's own images, targets and loss.
void write_train_check(Trainer& trainer, const std::string& dir, uint64_t seed) {
  torch::NoGradGuard no_grad;
  make_dirs(dir);
  const auto& c = trainer.config();
  for (const auto& p : trainer.generator()->named_parameters()) write_npy(dir + "/param_" + p.key() + ".npy", p.value());
  auto gen = at::detail::createCPUGenerator(seed + 2);
  auto z = torch::randn({c.classes_per_step * c.gen_per_class, c.noise_dim}, gen);
  auto labels = torch::arange(c.classes_per_step, torch::kLong).repeat_interleave(c.gen_per_class);
  write_npy(dir + "/z.npy", z);
  write_npy(dir + "/labels.npy", labels);
  write_npy(dir + "/out_images.npy", trainer.generator()->forward(z, labels));
  auto [loss, targets] = trainer.drift_targets(z, labels);
  const auto groups = parse_feature_groups(c.features);
  for (size_t g = 0; g < groups.size(); ++g) write_npy(dir + "/out_target_" + groups[g] + ".npy", targets[g]);
  write_npy(dir + "/out_loss.npy", torch::tensor({loss}, torch::kFloat64));
}

Row bench_train(const Args& a, const std::string& method) {
  const std::string base = a.out + "/train-" + method;
  TrainConfig c;
  c.method = method;
  c.features = a.features;
  c.width = a.width;
  c.gen_per_class = a.gen_per_class;
  c.pos_per_class = a.pos_per_class;
  c.landmarks = a.landmarks;
  c.temperatures = parse_temperatures(a.temps);
  c.data_dir = a.data_dir;
  c.out_dir = base + "/run";
  c.sample_every = c.checkpoint_every = 0;
  c.seed = a.seed;
  Trainer trainer(c);
  const std::string shape =
      method == "standard"
          ? fmt::format("10x{}, {}, width {}, {} pos/class", c.gen_per_class, c.features, c.width, c.pos_per_class)
          : fmt::format("10x{}, {}, width {}, {} landmarks", c.gen_per_class, c.features, c.width, c.landmarks);
  Row row{"train step " + method, shape};
  std::string py_args = fmt::format("train-step --method {} --data-dir {} --features {} --width {} --gen-per-class {} "
                                    "--pos-per-class {} --seed {} --repeats {}",
                                    method, quote(resolve_data_dir(a.data_dir)), quote(c.features), c.width,
                                    c.gen_per_class, c.pos_per_class, c.seed, a.steps);
  std::string check;
  if (method == "driftxpress") {
    export_trainer_summaries(trainer, base + "/summaries");
    write_train_check(trainer, base + "/check", a.seed);
    py_args += " --summaries " + quote(base + "/summaries");
    check = " --check " + quote(base + "/check");
  }
  interleave(
      row, a.rounds, [&] { return time_call([&] { trainer.step(); }, a.steps, a.warmup).samples_ms; },
      [&](bool first) { return run_python(a, py_args + (first ? check : "")); });
  if (!a.keep_files) fs::remove_all(base + "/summaries"), fs::remove_all(base + "/check");  // the cache stays
  return row;
}

void run(Args a) {
  DRIFTX_CHECK(a.rounds >= 1 && a.repeats >= 1 && a.steps >= 1 && a.warmup >= 0,
               "vs-python: need --rounds, --repeats, --steps >= 1 and --warmup >= 0");
  if (a.python.empty()) a.python = default_python();
  if (a.script.empty()) a.script = default_script();
  DRIFTX_CHECK(fs::exists(a.script), "vs-python: the Python baseline '{}' does not exist (--script)", a.script);
  const auto temps = parse_temperatures(a.temps);
  const auto standard = parse_triples(a.standard, "--standard");
  const auto projected = parse_triples(a.projected, "--projected");
  const auto methods = a.no_train ? std::vector<std::string>{} : parse_name_list(a.methods, "--methods");
  for (const auto& m : methods)
    DRIFTX_CHECK(m == "standard" || m == "driftxpress", "--methods: '{}' is not standard or driftxpress", m);
  // The Python side must import torch: say so plainly instead of failing in the first case.
  std::string py_version;
  try {
    py_version = run_capture(quote(a.python) +
                             " -c 'import sys, torch, numpy; print(sys.version.split()[0], torch.__version__)' 2>/dev/null");
  } catch (const Error&) {
    fail("vs-python: '{}' cannot import torch and numpy; install python3-torch (scripts/setup.sh does) or name "
         "another interpreter with --python / $DRIFTX_PYTHON", a.python);
  }
  while (!py_version.empty() && py_version.back() == '\n') py_version.pop_back();
  make_dirs(a.out);
  const auto machine = machine_info();
  // libgomp's spin-waiting (OMP_WAIT_POLICY unset or active) makes every parallel region wait for a
  // descheduled thread on a machine with more runnable processes than cores: record the policy and the
  // load, which the Python side inherits and shares.
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  const std::string load_before = load_average();
  std::cout << "bench vs-python: " << header_line(machine) << "\n"
            << fmt::format("python {} (torch), {} threads both sides, OMP_WAIT_POLICY={}; {} rounds alternating C++ "
                           "and Python, each a warm-up of {} then {} timed calls ({} training steps); median of all "
                           "timed calls\n",
                           py_version, at::get_num_threads(), wait_policy ? wait_policy : "(unset)", a.rounds, a.warmup,
                           a.repeats, a.steps)
            << std::flush;
  std::vector<Row> rows;
  for (const auto& t : standard) rows.push_back(bench_standard(a, temps, t[0], t[1], t[2]));
  for (const auto& t : projected) rows.push_back(bench_projected(a, temps, t[0], t[1], t[2]));
  for (const auto& m : methods) rows.push_back(bench_train(a, m));
  std::cerr << "\n";

  MarkdownTable table({"benchmark", "shape", "ours ms", "python ms", "python / ours", "max rel diff"});
  nlohmann::json jrows = nlohmann::json::array();
  for (const auto& r : rows) {
    const double ours = median(r.ours_ms), py = median(r.python_ms);
    table.add_row({r.bench, r.shape, fixed(ours, 2), fixed(py, 2), fixed(py / ours, 2) + "x",
                   r.max_rel_diff < 0 ? std::string("-") : fmt::format("{:.1e}", r.max_rel_diff)});
    jrows.push_back({{"benchmark", r.bench}, {"shape", r.shape}, {"ours_ms", ours}, {"python_ms", py},
                     {"ratio_python_over_ours", py / ours}, {"ours_samples_ms", r.ours_ms},
                     {"python_samples_ms", r.python_ms}, {"ours_round_medians_ms", r.ours_round_ms},
                     {"python_round_medians_ms", r.python_round_ms},
                     {"max_rel_diff", r.max_rel_diff < 0 ? nlohmann::json() : nlohmann::json(r.max_rel_diff)},
                     {"diffs", r.diffs}});
  }
  const std::string load_after = load_average();
  std::cout << fmt::format("\nload average (1/5/15 min) at the start: {}; at the end: {}\n\n", load_before, load_after);
  table.print(std::cout);
  std::cout << "python / ours > 1: the C++ side is faster. max rel diff: largest |python - ours| over the largest "
               "|ours| of each output (drift, goal/target, loss; train step: images, per-group targets and loss of "
               "the trainer on one batch), the worst of them; '-': not comparable (random positives drawn inside "
               "each step).\n";
  if (!a.report.empty()) {
    write_json(a.report, {{"rows", jrows},
                          {"machine", to_json(machine)},
                          {"python", py_version},
                          {"omp_wait_policy", wait_policy ? wait_policy : ""},
                          {"load_average", {{"start", load_before}, {"end", load_after}}},
                          {"config",
                           {{"rounds", a.rounds}, {"repeats", a.repeats}, {"steps", a.steps}, {"warmup", a.warmup},
                            {"temperatures", temps}, {"real", a.real}, {"seed", a.seed}}}});
    std::cout << "report: " << a.report << "\n";
  }
}

}  // namespace

void add_bench_vs_python(CLI::App& bench) {
  static Args a;
  auto* cmd = bench.add_subcommand(
      "vs-python", "The fields and training step against a PyTorch-in-Python implementation (bench/python), same inputs");
  cmd->add_option("--standard", a.standard, "Standard field shapes N:P:D, comma-separated ('' to skip)")->capture_default_str();
  cmd->add_option("--projected", a.projected, "Projected field query shapes B:M:D (D 784/196/49: MNIST pixels/pool2/pool4; '' to skip)")
      ->capture_default_str();
  cmd->add_option("--methods", a.methods, "Training-step methods")->capture_default_str();
  cmd->add_flag("--no-train", a.no_train, "Skip the training steps");
  cmd->add_option("--matmul-dtype", a.matmul_dtype,
                  "C++ side's field products: float32, or bf16 (Python stays float32; rows are marked)")
      ->capture_default_str();
  cmd->add_option("--features", a.features, "Training step: feature groups")->capture_default_str();
  cmd->add_option("--width", a.width, "Training step: generator width")->capture_default_str();
  cmd->add_option("--gen-per-class", a.gen_per_class, "Training step: generated samples per class")->capture_default_str();
  cmd->add_option("--pos-per-class", a.pos_per_class, "Training step, standard: positives per class")->capture_default_str();
  cmd->add_option("--landmarks", a.landmarks, "Training step, driftxpress: landmarks per group")->capture_default_str();
  cmd->add_option("--temps", a.temps, "Temperatures")->capture_default_str();
  cmd->add_option("--real", a.real, "Projected field: real MNIST train images summarised")->capture_default_str();
  cmd->add_option("--rounds", a.rounds, "Alternating rounds (C++, Python)")->capture_default_str();
  cmd->add_option("--repeats", a.repeats, "Field calls timed per round and side")->capture_default_str();
  cmd->add_option("--steps", a.steps, "Training steps timed per round and side")->capture_default_str();
  cmd->add_option("--warmup", a.warmup, "Untimed calls before each round's timed ones")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed of the inputs")->capture_default_str();
  cmd->add_option("--python", a.python, "Python interpreter with torch (default: $DRIFTX_PYTHON, else /usr/bin/python3)");
  cmd->add_option("--script", a.script, "The Python baseline (default: bench/python/driftx_bench.py beside the build)");
  cmd->add_option("--data-dir", a.data_dir, "Dataset root (default: the bundled data/)");
  cmd->add_option("--out", a.out, "Scratch directory for the exchanged .npy files")->capture_default_str();
  cmd->add_flag("--keep-files", a.keep_files, "Keep each case's .npy inputs and C++ outputs (for running bench/python by hand)");
  cmd->add_option("--report", a.report, "Output: JSON rows (all samples) + machine");
  cmd->callback([] { run(a); });
}

}  // namespace driftx::bench
