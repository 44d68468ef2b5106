// Sanitizer defaults for the ASan + UBSan builds (scripts/test.sh --sanitize, scripts/fuzz.sh), linked
// into each of their executables so that a report reproduces without environment variables
// (ASAN_OPTIONS, UBSAN_OPTIONS and LSAN_OPTIONS still override them).
//   UBSan: stop at the first report (the build is recoverable, which suppressions need), so a test or
//          fuzz input that triggers undefined behaviour fails.
//   LeakSanitizer: ignore memory that LibTorch itself allocates and never frees. LibTorch is not
//          instrumented; with the fast unwinder the stack of its allocations ends inside
//          libtorch_cpu.so, hence the module-wide pattern (allocations made by driftx code, and
//          tensors, which LibTorch's allocator in libc10.so hands out, are still checked). Known case,
//          LibTorch 1.13: PyTorchStreamReader::init throws on a malformed zip archive without freeing
//          miniz's reader state (mz_zip_reader_init), under torch::jit::load and InputArchive::load_from.
extern "C" {
const char* __ubsan_default_options() { return "halt_on_error=1:print_stacktrace=1"; }
const char* __lsan_default_suppressions() { return "leak:mz_zip_reader_init\nleak:libtorch_cpu.so\n"; }
}
