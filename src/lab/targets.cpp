// The lab's synthetic targets and the sliced Wasserstein distance between point sets.
#include <cmath>

#include "driftx/error.h"
#include "driftx/lab.h"

namespace driftx {

std::vector<std::string> lab_target_names() { return {"eight_gaussians", "checkerboard", "two_moons", "swiss_roll"}; }

torch::Tensor lab_embedding(int64_t dim) {
  DRIFTX_CHECK(dim >= 2, "lab: --dim must be >= 2, got {}", dim);
  if (dim == 2) return torch::eye(2);
  // A fixed seed: the plane is part of the target's definition, not of the run's randomness.
  auto gen = at::detail::createCPUGenerator(0x1ab);
  auto g = torch::randn({dim, 2}, gen, torch::kFloat64);
  auto qr = at::linalg_qr(g, "reduced");
  return std::get<0>(qr).to(torch::kFloat32).contiguous();
}

namespace {

torch::Tensor sample_plane(const std::string& name, int64_t n, at::Generator& gen) {
  const double pi = M_PI;
  if (name == "eight_gaussians") {
    // Centres on the circle of radius 2 at angles k pi / 4, standard deviation 0.1.
    auto k = torch::randint(0, 8, {n}, gen, torch::kFloat32);
    auto a = k * (pi / 4);
    return torch::stack({2 * torch::cos(a), 2 * torch::sin(a)}, 1) + 0.1 * torch::randn({n, 2}, gen);
  }
  if (name == "checkerboard") {
    // Eight unit squares of a 4 x 4 board on [-2, 2)^2 (FFJORD's construction).
    auto x1 = torch::rand({n}, gen) * 4 - 2;
    auto b = torch::randint(0, 2, {n}, gen, torch::kFloat32);
    auto x2 = torch::rand({n}, gen) - 2 * b + torch::remainder(torch::floor(x1), 2);
    return torch::stack({x1, x2}, 1);
  }
  if (name == "two_moons") {
    // sklearn's moons (outer (cos t, sin t), inner (1 - cos t, 0.5 - sin t)), centred, times 1.6,
    // Gaussian noise 0.08 (0.05 before the scaling).
    auto t = torch::rand({n}, gen) * pi;
    auto inner = torch::randint(0, 2, {n}, gen, torch::kFloat32);
    auto x = torch::where(inner > 0, 1 - torch::cos(t), torch::cos(t)) - 0.5;
    auto y = torch::where(inner > 0, 0.5 - torch::sin(t), torch::sin(t)) - 0.25;
    return 1.6 * torch::stack({x, y}, 1) + 0.08 * torch::randn({n, 2}, gen);
  }
  if (name == "swiss_roll") {
    // t in [1.5 pi, 4.5 pi], (t cos t, t sin t) / 7 (inside about [-2, 2]^2), noise 0.05.
    auto t = 1.5 * pi * (1 + 2 * torch::rand({n}, gen));
    return torch::stack({t * torch::cos(t), t * torch::sin(t)}, 1) / 7 + 0.05 * torch::randn({n, 2}, gen);
  }
  fail("lab: unknown target '{}' (use eight_gaussians, checkerboard, two_moons or swiss_roll)", name);
}

}  // namespace

torch::Tensor sample_lab_target(const std::string& name, int64_t n, uint64_t seed, int64_t dim) {
  DRIFTX_CHECK(n >= 1, "lab: need at least one sample, got {}", n);
  auto embed = lab_embedding(dim);
  auto gen = at::detail::createCPUGenerator(seed);
  auto plane = sample_plane(name, n, gen).to(torch::kFloat32);
  if (dim == 2) return plane.contiguous();
  return (torch::matmul(plane, embed.t()) + 0.05 * torch::randn({n, dim}, gen)).contiguous();
}

double sliced_wasserstein(const torch::Tensor& a, const torch::Tensor& b, int64_t projections, uint64_t seed) {
  DRIFTX_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1) && a.size(0) >= 1 && b.size(0) >= 1,
               "sliced Wasserstein: need two non-empty sets of the same dimension, got {} and {}",
               shape_str(a.sizes()), shape_str(b.sizes()));
  DRIFTX_CHECK(projections >= 1, "sliced Wasserstein: projections must be >= 1, got {}", projections);
  const int64_t n = a.size(0), m = b.size(0), D = a.size(1), K = std::max(n, m);
  auto gen = at::detail::createCPUGenerator(seed);
  auto dirs = torch::randn({D, projections}, gen, torch::kFloat64);
  dirs = dirs / dirs.norm(2, 0, true);
  auto pa = std::get<0>(torch::matmul(a.to(torch::kFloat64), dirs).sort(0));
  auto pb = std::get<0>(torch::matmul(b.to(torch::kFloat64), dirs).sort(0));
  // Quantile function of an empirical measure of size s at level q: the sorted value floor(q s).
  auto levels = (torch::arange(K, torch::kFloat64) + 0.5) / static_cast<double>(K);
  auto ia = (levels * static_cast<double>(n)).floor().clamp_max(n - 1).to(torch::kLong);
  auto ib = (levels * static_cast<double>(m)).floor().clamp_max(m - 1).to(torch::kLong);
  auto diff = pa.index_select(0, ia) - pb.index_select(0, ib);
  return std::sqrt(diff.pow(2).mean().item<double>());
}

}  // namespace driftx
