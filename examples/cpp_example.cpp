// cpp_example.cpp - libsardfq from C++ with the wrappers of raii.hpp: load a
// model, sample attention priors, synthesise a few calibration images,
// quantize the model with them and evaluate both models on a labelled set.
//
//   cpp_example MODEL.safetensors [DATA_DIR]   (default: Fashion-MNIST)
#include "raii.hpp"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <vector>

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: %s MODEL.safetensors [DATA_DIR]\n", argv[0]);
        return 2;
    }
    const char *data = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist";
    try {
        const sardfq::model m = sardfq::load_model(argv[1]);
        const sardfq_model_info info = sardfq::info(m);
        std::printf("model: %dx%dx%d input, %d classes, %d blocks x %d heads\n", info.in_chans,
                    info.img_h, info.img_w, info.num_classes, info.depth, info.num_heads);

        // Four attention priors over the patch grid; each sums to 1.
        const int cells = info.grid_h * info.grid_w;
        sardfq::prior pr = sardfq::create_prior(info.grid_h, info.grid_w);
        std::vector<float> priors(4 * static_cast<size_t>(cells));
        sardfq::check(sardfq_prior_sample(pr.get(), 4, priors.data()), "sample priors");
        std::printf("priors: 4 over %dx%d patches, first peaks at %.3f\n", info.grid_h,
                    info.grid_w, *std::max_element(priors.begin(), priors.begin() + cells));

        // Synthesise 4 images in 5 steps (real calibration sets use ~1000).
        sardfq_generator_params gp;
        sardfq_generator_default_params(&gp);
        gp.n_images = 4;
        gp.iters = 5;
        sardfq::generator g = sardfq::create_generator(m, &gp);
        sardfq_synth_report r{};
        r.struct_size = sizeof r;
        sardfq_status s;
        while ((s = sardfq_generator_step(g.get(), &r)) == SARDFQ_OK) {
        }
        if (s != SARDFQ_E_STATE) // SARDFQ_E_STATE: all steps done
            sardfq::check(s, "synthesis step");
        std::vector<float> images(static_cast<size_t>(gp.n_images) * info.in_chans * info.img_h *
                                  info.img_w);
        sardfq::check(sardfq_generator_get_images(g.get(), images.data(), images.size()),
                      "read images");
        std::printf("synth: %d images, %d steps, loss %.4f, target_prob %.4f\n", gp.n_images,
                    r.step, r.loss, r.target_prob);

        // Quantize to W6A6 with them (RepQ-ViT, calibration only).
        sardfq_quant_params qp;
        sardfq_quant_default_params(&qp);
        qp.weight_bits = 6;
        qp.act_bits = 6;
        const sardfq::quantizer q = sardfq::create_quantizer(m, &qp);
        sardfq::check(sardfq_quantizer_calibrate(q.get(), images.data(), gp.n_images), "calibrate");
        const sardfq::model qm = sardfq::finalize(q);

        // Evaluate both on the first 200 images of the data set.
        sardfq::dataset d = sardfq::open_dataset(data, m);
        sardfq_eval_params ep;
        sardfq_eval_default_params(&ep);
        ep.limit = 200;
        const struct {
            const char *name;
            const sardfq::model &model;
        } runs[] = {{"fp", m}, {"w6a6", qm}};
        for (const auto &run : runs) {
            sardfq_eval_result res{};
            res.struct_size = sizeof res;
            sardfq::check(sardfq_evaluate(run.model.get(), d.get(), &ep, &res), "evaluate");
            std::printf("eval %s: top1=%.2f top5=%.2f n=%lld\n", run.name, 100.0 * res.top1_correct / res.n,
                        100.0 * res.top5_correct / res.n, static_cast<long long>(res.n));
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cpp_example: %s\n", e.what());
        return 1;
    }
    return 0;
}
