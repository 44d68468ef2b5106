#include <gtest/gtest.h>

#include "test_support.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "driftx/error.h"
#include "driftx/generator.h"
#include "driftx/image_io.h"
#include "driftx/npy.h"

using namespace driftx;
namespace fs = std::filesystem;

namespace {

class GeneratorTest : public testing_support::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    torch::manual_seed(0);
  }
};

GeneratorConfig mnist(int64_t num_classes = 0, bool alpha = false, int64_t width = 32) {
  GeneratorConfig c;
  c.num_classes = num_classes;
  c.alpha_conditioning = alpha;
  c.width = width;
  return c;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// Perturbs every parameter so tests do not depend on the initialisation (e.g. GroupNorm's 1/0).
void randomize(Generator& g) {
  torch::NoGradGuard no_grad;
  for (auto& p : g->parameters()) p.add_(torch::randn_like(p) * 0.1);
}

}  // namespace

TEST_F(GeneratorTest, OutputShapeAndRange) {
  Generator g(mnist());
  auto x = g->forward(torch::randn({5, 64}));
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{5, 1, 28, 28}));
  EXPECT_LE(x.abs().max().item<float>(), 1.0f);
  EXPECT_GT(x.std().item<float>(), 1e-4f);  // not a constant image

  Generator gc(mnist(10, true));
  auto y = gc->forward(torch::randn({4, 64}), torch::tensor({0, 3, 9, 3}), torch::tensor({1.0f, 2.0f, 0.5f, 4.0f}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{4, 1, 28, 28}));
  EXPECT_LE(y.abs().max().item<float>(), 1.0f);

  GeneratorConfig c3;
  c3.channels = 3;
  c3.image_size = 32;
  c3.noise_dim = 16;
  c3.width = 64;
  Generator g3(c3);
  EXPECT_EQ(g3->forward(torch::randn({2, 16})).sizes(), (std::vector<int64_t>{2, 3, 32, 32}));

  // Small widths (GroupNorm falls back to fewer groups) still build and run.
  Generator g8(mnist(0, false, 8));
  EXPECT_EQ(g8->forward(torch::randn({2, 64})).sizes(), (std::vector<int64_t>{2, 1, 28, 28}));
}

TEST_F(GeneratorTest, ConditioningChangesOutput) {
  Generator g(mnist(10, true));
  randomize(g);
  auto z = torch::randn({1, 64}).repeat({2, 1});
  auto x = g->forward(z, torch::tensor({2, 7}));
  EXPECT_GT(max_abs_diff(x[0], x[1]), 1e-3);
  // Alpha: absent means alpha = 1 exactly; another alpha changes the output.
  auto labels = torch::tensor({4, 4});
  auto none = g->forward(z, labels);
  EXPECT_EQ(max_abs_diff(none, g->forward(z, labels, torch::ones({2}))), 0.0);
  EXPECT_GT(max_abs_diff(none, g->forward(z, labels, torch::full({2}, 3.0f))), 1e-3);
}

TEST_F(GeneratorTest, BadInputsThrow) {
  Generator gc(mnist(10, false));
  Generator gu(mnist());
  auto z = torch::randn({3, 64});
  EXPECT_THROW(gc->forward(z), Error);                                     // labels missing
  EXPECT_THROW(gu->forward(z, torch::tensor({0, 1, 2})), Error);           // labels to unconditional
  EXPECT_THROW(gc->forward(z, torch::tensor({0, 1, 10})), Error);          // out of range
  EXPECT_THROW(gc->forward(z, torch::tensor({-1, 1, 2})), Error);          // negative
  EXPECT_THROW(gc->forward(z, torch::tensor({0, 1})), Error);              // wrong count
  EXPECT_THROW(gc->forward(z, torch::tensor({0.f, 1.f, 2.f})), Error);     // float labels
  EXPECT_THROW(gu->forward(torch::randn({3, 63})), Error);                 // wrong noise dim
  EXPECT_THROW(gu->forward(torch::randn({64})), Error);                    // not 2-D
  EXPECT_THROW(gc->forward(z, torch::tensor({0, 1, 2}), torch::ones({3})), Error);  // alpha w/o conditioning
  Generator ga(mnist(10, true));
  EXPECT_THROW(ga->forward(z, torch::tensor({0, 1, 2}), torch::ones({2})), Error);  // alpha wrong shape
  EXPECT_NO_THROW(gc->forward(z, torch::tensor({0, 1, 9})));
}

TEST_F(GeneratorTest, GradientsReachEveryParameter) {
  Generator g(mnist(10, true));
  randomize(g);
  auto x = g->forward(torch::randn({8, 64}), torch::arange(8), torch::rand({8}) * 3);
  x.mean().backward();
  for (const auto& p : g->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  // Every registered submodule holds parameters.
  EXPECT_EQ(g->named_parameters().size(), 14u);
}

TEST_F(GeneratorTest, ParameterCountOfDefaultConditionalMnist) {
  GeneratorConfig c;
  c.num_classes = 10;
  Generator g(c);
  int64_t n = 0;
  for (const auto& p : g->parameters()) n += p.numel();
  // 640 embed + 407680 fc + 131136 up1 + 128 norm1 + 32800 up2 + 64 norm2 + 289 out.
  EXPECT_EQ(n, 572737);
  c.alpha_conditioning = true;
  Generator ga(c);
  n = 0;
  for (const auto& p : ga->parameters()) n += p.numel();
  EXPECT_EQ(n, 572737 + 64);
}

TEST_F(GeneratorTest, ConfigJson) {
  auto c = mnist(10, true, 64);
  c.noise_dim = 32;
  auto back = GeneratorConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(back.noise_dim, 32);
  EXPECT_EQ(back.num_classes, 10);
  EXPECT_TRUE(back.alpha_conditioning);
  EXPECT_EQ(back.width, 64);
  // Missing fields keep defaults.
  EXPECT_EQ(GeneratorConfig::from_json(nlohmann::json::object()).to_json(), GeneratorConfig().to_json());

  auto bad = [&](const char* key, nlohmann::json value) {
    auto j = GeneratorConfig().to_json();
    j[key] = value;
    EXPECT_THROW(GeneratorConfig::from_json(j), Error) << key << "=" << value.dump();
  };
  bad("noise_dim", 0);
  bad("channels", 2);
  bad("image_size", 30);
  bad("image_size", 0);
  bad("num_classes", -1);
  bad("width", 4);
  bad("width", 12);
  bad("width", "128");
  bad("alpha_conditioning", 1);
  bad("num_class", 10);  // typo: unknown field
  EXPECT_THROW(GeneratorConfig::from_json(nlohmann::json::array()), Error);
  GeneratorConfig direct;
  direct.channels = 2;
  EXPECT_THROW(Generator{direct}, Error);
}

TEST_F(GeneratorTest, CopyParameters) {
  Generator a(mnist(10)), b(mnist(10));
  randomize(a);
  auto z = torch::randn({4, 64});
  auto labels = torch::tensor({1, 2, 3, 4});
  EXPECT_GT(max_abs_diff(a->forward(z, labels), b->forward(z, labels)), 1e-4);
  copy_parameters(*b, *a);
  EXPECT_EQ(max_abs_diff(a->forward(z, labels), b->forward(z, labels)), 0.0);
  Generator other(mnist(0));
  EXPECT_THROW(copy_parameters(*other, *a), Error);  // no class_embed
  Generator wide(mnist(10, false, 64));
  EXPECT_THROW(copy_parameters(*wide, *a), Error);   // shapes differ
}

TEST_F(GeneratorTest, ExportedTorchScriptMatches) {
  struct Case {
    GeneratorConfig config;
    bool labels, alpha;
  };
  auto rgb = mnist(3, true, 16);
  rgb.channels = 3;
  rgb.image_size = 32;
  for (const auto& k : {Case{mnist(), false, false}, Case{mnist(10), true, false}, Case{mnist(10, true), true, true},
                        Case{rgb, true, true}}) {
    Generator g(k.config);
    randomize(g);
    const auto file = path("gen.pt");
    export_generator(g).save(file);
    auto m = torch::jit::load(file);
    EXPECT_EQ(m.attr("noise_dim").toInt(), k.config.noise_dim);
    EXPECT_EQ(m.attr("num_classes").toInt(), k.config.num_classes);

    auto z = torch::randn({6, k.config.noise_dim});
    auto y = torch::randint(k.config.num_classes > 0 ? k.config.num_classes : 1, {6}, torch::kLong);
    auto alpha = torch::rand({6}) * 4;
    torch::Tensor ref;
    std::vector<torch::jit::IValue> inputs{z};
    if (k.labels) inputs.push_back(y);
    if (k.alpha) inputs.push_back(alpha);
    {
      torch::NoGradGuard no_grad;
      ref = g->forward(z, k.labels ? y : torch::Tensor(), k.alpha ? alpha : torch::Tensor());
    }
    auto got = m.forward(inputs).toTensor();
    ASSERT_EQ(got.sizes(), ref.sizes());
    EXPECT_LT(max_abs_diff(got, ref), 1e-5) << k.config.to_json().dump();
    if (k.alpha) {  // absent alpha = 1, as in C++
      auto no_alpha = m.forward({z, y}).toTensor();
      EXPECT_LT(max_abs_diff(no_alpha, g->forward(z, y)), 1e-5);
    }
    // A conditional module refuses a missing y; an unconditional one refuses a given y.
    if (k.labels)
      EXPECT_ANY_THROW(m.forward({z}));
    else
      EXPECT_ANY_THROW(m.forward({z, y}));
  }
}

// The exported file also loads in Python (torch.jit.load) and gives the same numbers.
TEST_F(GeneratorTest, ExportedLoadsInPython) {
  if (std::system("/usr/bin/python3 -c 'import torch, numpy' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with torch and numpy not available";
  for (int64_t classes : {0, 10}) {
    Generator g(mnist(classes, classes > 0));
    randomize(g);
    const auto model = path("gen.pt"), out = path("out.npy"), script = path("run.py");
    export_generator(g).save(model);
    {
      std::ofstream py(script);
      py << "import sys, torch, numpy\n"
         << "m = torch.jit.load(sys.argv[1])\n"
         << "assert m.noise_dim == 64 and m.num_classes == " << classes << "\n"
         << "z = torch.zeros(2, 64)\n"
         << "x = m(z, torch.tensor([0, 1])) if m.num_classes > 0 else m(z)\n"
         << "numpy.save(sys.argv[2], x.detach().numpy())\n";
    }
    const auto cmd = "/usr/bin/python3 " + script + " " + model + " " + out;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    torch::NoGradGuard no_grad;
    auto ref = classes > 0 ? g->forward(torch::zeros({2, 64}), torch::tensor({0, 1})) : g->forward(torch::zeros({2, 64}));
    auto got = read_npy(out);
    ASSERT_EQ(got.sizes(), ref.sizes());
    EXPECT_LT(max_abs_diff(got, ref), 1e-5);
  }
}

TEST_F(GeneratorTest, PngGrid) {
  // 6 images of 1 x 4 x 5, columns 3, padding 2: 2 rows x 3 columns.
  auto images = torch::zeros({6, 1, 4, 5});
  const std::vector<float> fill = {1.0f, -1.0f, 0.0f, 0.5f, -0.5f, 2.0f};
  for (int k = 0; k < 6; ++k) images[k].fill_(fill[k]);
  const auto file = path("grid.png");
  write_png_grid(file, images, 3, 2);
  auto png = read_png(file);
  ASSERT_EQ(png.sizes(), (std::vector<int64_t>{2 * (4 + 2) + 2, 3 * (5 + 2) + 2, 1}));
  const std::vector<int> expect = {255, 0, 128, 191, 64, 255};  // round((x+1)*127.5), clamped
  for (int k = 0; k < 6; ++k) {
    const int64_t top = 2 + (k / 3) * 6, left = 2 + (k % 3) * 7;
    auto tile = png.narrow(0, top, 4).narrow(1, left, 5).to(torch::kInt);
    EXPECT_EQ(tile.min().item<int>(), expect[k]) << "image " << k;
    EXPECT_EQ(tile.max().item<int>(), expect[k]) << "image " << k;
  }
  EXPECT_EQ(png[0][0][0].item<uint8_t>(), 128);  // mid-gray border
  EXPECT_EQ(png[1 + 6][9][0].item<uint8_t>(), 128);

  // RGB keeps channel order; fewer images than columns gives one row of B tiles.
  auto rgb = torch::stack({torch::full({4, 4}, 1.0f), torch::full({4, 4}, -1.0f), torch::zeros({4, 4})}).unsqueeze(0);
  write_png_grid(file, rgb.repeat({2, 1, 1, 1}), 8, 1);
  png = read_png(file);
  ASSERT_EQ(png.sizes(), (std::vector<int64_t>{6, 11, 3}));
  EXPECT_EQ(png[1][1][0].item<uint8_t>(), 255);
  EXPECT_EQ(png[1][1][1].item<uint8_t>(), 0);
  EXPECT_EQ(png[1][1][2].item<uint8_t>(), 128);

  EXPECT_THROW(write_png_grid(file, torch::zeros({2, 2, 4, 4}), 3), Error);   // 2 channels
  EXPECT_THROW(write_png_grid(file, torch::zeros({1, 4, 4}), 3), Error);      // not 4-D
  EXPECT_THROW(write_png_grid(file, torch::zeros({0, 1, 4, 4}), 3), Error);   // empty
  EXPECT_THROW(write_png_grid(file, torch::zeros({2, 1, 4, 4}), 0), Error);   // columns
  EXPECT_THROW(write_png_grid(file, torch::full({1, 1, 2, 2}, NAN), 1), Error);
  EXPECT_THROW(read_png(path("missing.png")), Error);
  std::ofstream(path("junk.png")) << "not a png";
  EXPECT_THROW(read_png(path("junk.png")), Error);
}
