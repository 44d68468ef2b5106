// Subcommand registry of the driftx CLI. Each subcommand lives in its own cmd_*.cpp and registers
// itself with add_*_command(); run() parses, sets threads, and turns driftx::Error into one line.
#pragma once

#include <CLI/CLI.hpp>

namespace driftx::cli {

// Flags every subcommand shares (threads, seed, device).
struct CommonOptions {
  int threads = 0;  // 0: all hardware threads
};
CommonOptions& common();

void add_field_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_fidelity_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_sample_command(CLI::App& app);  // sample and export
void add_eval_command(CLI::App& app);
void add_evaluator_command(CLI::App& app);
void add_encoder_command(CLI::App& app);    // self-supervised feature encoder (issue 11)
void add_compare_command(CLI::App& app);
void add_launch_command(CLI::App& app);   // local ranks of a distributed job
void add_lab_command(CLI::App& app);      // 2-D lab: fields, flows, fixed points against rank
void add_plot_command(CLI::App& app);     // line plots from a JSON file of series (scripts' pictures)

int run(int argc, char** argv);

// Guidance scale of sample / eval: finite and in [1, 100] (training draws alpha from [1, --alpha-max];
// below 1 the generator was never conditioned, and huge values overflow its alpha embedding into NaN).
// Checked before anything is loaded, so a bad value costs nothing.
void check_guidance_scale(double alpha);

}  // namespace driftx::cli
