// sisa as a library: train a run, forget one sample exactly, predict, through
// the public API in <sisa/run.h> (what the `sisa` command itself calls).
//   train_forget_predict CONFIG RUN_DIR ID
#include <sisa/errors.h>
#include <sisa/run.h>

#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: " << argv[0] << " CONFIG RUN_DIR ID\n";
    return 2;
  }
  try {
    sisa::TrainRequest train;
    train.config_path = argv[1];
    train.run_dir = argv[2];
    const auto trained = sisa::train(train);
    std::cout << "trained " << trained["shards"] << " shards on " << trained["samples"] << " samples\n";

    sisa::ForgetRequest forget;
    forget.run_dir = argv[2];
    forget.keys = {std::strtoll(argv[3], nullptr, 10)};
    const auto receipt = sisa::forget(forget);
    std::cout << "forgot " << receipt["deleted_count"] << " sample(s); receipt " << receipt["receipt_path"] << "\n";

    sisa::PredictRequest predict;
    predict.run_dir = argv[2];
    const auto result = sisa::predict(predict);
    std::cout << "accuracy " << result["accuracy"] << " on " << result["samples"] << " test samples\n";
    return 0;
  } catch (const sisa::Error& e) {
    std::cerr << e.what() << "\n";
    return static_cast<int>(e.code());
  }
}
