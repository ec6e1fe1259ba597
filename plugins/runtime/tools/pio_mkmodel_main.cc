// pio-mkmodel: see pio/runtime/mkmodel.h and `pio-mkmodel --help`.

#include <cstdio>
#include <string_view>
#include <vector>

#include "pio/runtime/mkmodel.h"

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::string_view arg : args) {
    if (arg == "--help" || arg == "-h") {
      std::fputs(pio::runtime::mkmodel_usage().c_str(), stdout);
      return 0;
    }
  }
  pio::Result<pio::runtime::MkmodelOptions> options = pio::runtime::parse_mkmodel_args(args);
  if (!options.ok()) {
    std::fprintf(stderr, "pio-mkmodel: %s\n\n%s", options.status().message().c_str(),
                 pio::runtime::mkmodel_usage().c_str());
    return 2;
  }
  pio::Result<pio::runtime::MkmodelSummary> summary =
      pio::runtime::write_random_checkpoint(*options);
  if (!summary.ok()) {
    std::fprintf(stderr, "pio-mkmodel: %s\n", summary.status().to_string().c_str());
    return 1;
  }
  std::printf("pio-mkmodel: wrote %s: %lld tensors, %llu bytes of weights\n",
              options->out_dir.c_str(), static_cast<long long>(summary->tensors),
              static_cast<unsigned long long>(summary->weight_bytes));
  return 0;
}
