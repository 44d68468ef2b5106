#include <cmath>
#include <iostream>
#include <thread>

#include "commands.h"
#include "driftx/error.h"
#include "driftx/interrupt.h"
#include "driftx/runtime.h"

namespace driftx::cli {

CommonOptions& common() {
  static CommonOptions options;
  return options;
}

void check_guidance_scale(double alpha) {
  DRIFTX_CHECK(std::isfinite(alpha) && alpha >= 1 && alpha <= 100, "--alpha must be a number in [1, 100], got {}", alpha);
}

namespace {

// Every --seed is unsigned: CLI11 would wrap "-1" to 2^64 - 1, so a sign is refused before conversion.
void refuse_negative_seeds(CLI::App& app) {
  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (auto* seed = sub->get_option_no_throw("--seed"))
      seed->check(CLI::Validator(
          [](std::string& s) { return s.find('-') == std::string::npos ? std::string() : "must be an integer >= 0"; },
          "UINT"));
    refuse_negative_seeds(*sub);
  }
}

// LibTorch messages can run over several lines (and a C++ backtrace): the first line says what failed.
std::string first_line(const std::string& message) { return message.substr(0, message.find('\n')); }

}  // namespace

int run(int argc, char** argv) {
  keep_freed_memory();
  CLI::App app{"driftx: train one-step drifting generators with the exact standard field or the "
               "DriftXpress projected RKHS field."};
  app.require_subcommand(1);
  // A flag given twice takes its last value, so wrappers (scripts/run.sh) can be overridden.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  // At most 4 per hardware thread: more only adds contention (and --threads 1000 once ran 1,878 threads).
  const int max_threads = 4 * static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  app.add_option("--threads", common().threads, "CPU threads for LibTorch (0 = all cores, divided among the ranks of a driftx launch)")
      ->capture_default_str()
      ->check(CLI::Range(0, max_threads).description(fmt::format("0..{}", max_threads)));
  app.set_version_flag("--version", "driftx 0.1.0");
  add_field_command(app);
  add_bench_command(app);
  add_fidelity_command(app);
  add_train_command(app);
  add_sample_command(app);
  add_eval_command(app);
  add_evaluator_command(app);
  add_encoder_command(app);
  add_compare_command(app);
  add_launch_command(app);
  add_lab_command(app);
  add_plot_command(app);
  refuse_negative_seeds(app);
  // Threads are set before any subcommand callback runs.
  app.parse_complete_callback([] { set_threads(common().threads); });
  install_interrupt_handlers();  // Ctrl-C / SIGTERM: one line, exit 130 / 143, no partial files
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << " (see driftx --help)" << std::endl;
    return 2;
  } catch (const Interrupted& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 128 + e.signal();
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  } catch (const c10::Error& e) {
    const std::string msg = first_line(e.what_without_backtrace());
    if (msg.find("can't allocate memory") != std::string::npos)
      std::cerr << "error: out of memory: " << msg << " (use smaller sizes, e.g. --n or --width)" << std::endl;
    else
      std::cerr << "error: " << msg << std::endl;
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory (use smaller sizes, e.g. --n or --width)" << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << first_line(e.what()) << std::endl;
    return 1;
  }
  return 0;
}

}  // namespace driftx::cli
