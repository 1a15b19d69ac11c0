// classify.cpp — classify.c from C++: the pretrained default model on the
// image files named on the command line.
//   c++ classify.cpp $(pkg-config --cflags --libs digits) -o classify
#include <digits.h>

#include <iostream>
#include <memory>

int main(int argc, char **argv) {
    dg_model *raw = nullptr;
    if (dg_model_load(&raw, "default") != DG_OK) {
        std::cerr << "classify: " << dg_errmsg() << "\n";
        return 1;
    }
    std::unique_ptr<dg_model, decltype(&dg_model_free)> model(raw, dg_model_free);
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        dg_prediction p;
        if (dg_predict_file(model.get(), argv[i], &p) != DG_OK) {
            std::cerr << "classify: " << dg_errmsg() << "\n";
            failed = 1;
            continue;
        }
        std::cout << argv[i] << ": " << p.digit << " (p=" << p.probs[p.digit] << ")\n";
    }
    return failed;
}
