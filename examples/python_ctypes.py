#!/usr/bin/env python3
"""python_ctypes.py - libsardfq from Python with ctypes only (no numpy).

    python3 python_ctypes.py [--lib LIBRARY] MODEL.safetensors [DATA_DIR]

LIBRARY defaults to $SARDFQ_LIB, else "libsardfq.so.0" (the loader's search
path). DATA_DIR defaults to the Debian Fashion-MNIST folder. Loads the model,
samples attention priors, synthesises 4 images in 3 steps, saves them as a
calibration set, quantizes the model to W4A4 with them (RepQ-ViT, 2 block
reconstruction iterations), saves and reloads the quantized model,
evaluates both models on 200 images and prints the results.
Exits non-zero on any failure.
"""
import argparse
import ctypes as C
import os
import sys
import tempfile

# The public structs, field for field as in sardfq.h (fixed-width types;
# ctypes applies the C alignment rules, so the layouts match).
PROGRESS_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_int64, C.c_int64, C.c_char_p)


class ModelParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("num_heads", C.c_int32), ("n_threads", C.c_int32)]


class ModelInfo(C.Structure):
    _fields_ = ([("struct_size", C.c_uint32)]
                + [(n, C.c_int32) for n in ("arch", "naming", "img_h", "img_w", "patch_size",
                                            "in_chans", "embed_dim", "depth", "num_heads",
                                            "head_dim", "mlp_hidden", "num_classes", "grid_h",
                                            "grid_w", "num_prefix_tokens", "num_tokens")]
                + [("mean", C.c_float * 3), ("std", C.c_float * 3), ("crop_pct", C.c_float),
                   ("ln_eps", C.c_float), ("num_params", C.c_int64),
                   ("flops_per_image", C.c_double), ("source", C.c_int32 * 13)])


class EvalParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("limit", C.c_int64), ("batch", C.c_int32),
                ("progress", PROGRESS_FN), ("user_data", C.c_void_p)]


class EvalResult(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("n", C.c_int64), ("top1_correct", C.c_int64),
                ("top5_correct", C.c_int64)]


class PriorParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("kind", C.c_int32), ("max_components", C.c_int32),
                ("scale_min", C.c_float), ("scale_max", C.c_float), ("seed", C.c_uint64)]


class GeneratorParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("method", C.c_int32), ("n_images", C.c_int32),
                ("iters", C.c_int32), ("rounds", C.c_int32), ("warmup", C.c_int32),
                ("lr", C.c_float), ("beta1", C.c_float), ("beta2", C.c_float),
                ("adam_eps", C.c_float), ("use_apa", C.c_int32), ("use_msr", C.c_int32),
                ("use_sl", C.c_int32), ("apa_weight", C.c_float), ("tv_weight", C.c_float),
                ("tv_min", C.c_float), ("tv_max", C.c_float), ("sl_min", C.c_float),
                ("sl_max", C.c_float), ("msr_regions", C.c_int32), ("prior_kind", C.c_int32),
                ("prior_components", C.c_int32), ("prior_scale_min", C.c_float),
                ("prior_scale_max", C.c_float), ("micro_batch", C.c_int32),
                ("seed", C.c_uint64), ("progress", PROGRESS_FN), ("user_data", C.c_void_p)]


class SynthReport(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("step", C.c_int32), ("total", C.c_int32)] + [
        (n, C.c_float) for n in ("lr", "loss", "apa", "ce", "msr", "tv", "pse", "target_prob",
                                 "seconds", "model_seconds")]


class QuantParams(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("weight_bits", C.c_int32), ("act_bits", C.c_int32),
                ("scheme", C.c_int32), ("n_threads", C.c_int32), ("recon_iters", C.c_int32),
                ("recon_lr", C.c_float), ("progress", PROGRESS_FN), ("user_data", C.c_void_p)]


# The 0.1 / 0.2 sizes on x86-64 (tests/headers/abi_layout.c freezes the C side).
if C.sizeof(C.c_void_p) == 8:
    for struct, size in ((ModelParams, 12), (ModelInfo, 176), (EvalParams, 40), (EvalResult, 32),
                         (PriorParams, 32), (GeneratorParams, 128), (SynthReport, 52), (QuantParams, 48)):
        assert C.sizeof(struct) == size, (struct.__name__, C.sizeof(struct))

E_STATE = -8
P = C.POINTER
OPAQUE = C.c_void_p  # every handle (sardfq_model *, ...) is an opaque pointer

# (name, return type, argument types) of the functions used here.
PROTOTYPES = [
    ("sardfq_version_string", C.c_char_p, []),
    ("sardfq_status_string", C.c_char_p, [C.c_int32]),
    ("sardfq_last_error", C.c_char_p, []),
    ("sardfq_model_default_params", None, [P(ModelParams)]),
    ("sardfq_model_load", C.c_int32, [C.c_char_p, P(ModelParams), P(OPAQUE)]),
    ("sardfq_model_free", None, [OPAQUE]),
    ("sardfq_model_get_info", C.c_int32, [OPAQUE, P(ModelInfo)]),
    ("sardfq_prior_default_params", None, [P(PriorParams)]),
    ("sardfq_prior_create", C.c_int32, [C.c_int, C.c_int, P(PriorParams), P(OPAQUE)]),
    ("sardfq_prior_sample", C.c_int32, [OPAQUE, C.c_int, P(C.c_float)]),
    ("sardfq_prior_free", None, [OPAQUE]),
    ("sardfq_generator_default_params", None, [P(GeneratorParams)]),
    ("sardfq_generator_create", C.c_int32, [OPAQUE, P(GeneratorParams), P(OPAQUE)]),
    ("sardfq_generator_step", C.c_int32, [OPAQUE, P(SynthReport)]),
    ("sardfq_generator_get_images", C.c_int32, [OPAQUE, P(C.c_float), C.c_size_t]),
    ("sardfq_generator_get_targets", C.c_int32, [OPAQUE, P(C.c_float), C.c_size_t]),
    ("sardfq_generator_free", None, [OPAQUE]),
    ("sardfq_calib_save", C.c_int32, [C.c_char_p, P(C.c_float), P(C.c_float)] + [C.c_int] * 5),
    ("sardfq_calib_load", C.c_int32, [C.c_char_p, P(C.c_float), P(C.c_float)] + [P(C.c_int)] * 5),
    ("sardfq_dataset_open", C.c_int32, [C.c_char_p, OPAQUE, P(OPAQUE)]),
    ("sardfq_dataset_count", C.c_int64, [OPAQUE]),
    ("sardfq_dataset_free", None, [OPAQUE]),
    ("sardfq_eval_default_params", None, [P(EvalParams)]),
    ("sardfq_evaluate", C.c_int32, [OPAQUE, OPAQUE, P(EvalParams), P(EvalResult)]),
    ("sardfq_quant_default_params", None, [P(QuantParams)]),
    ("sardfq_quantizer_create", C.c_int32, [OPAQUE, P(QuantParams), P(OPAQUE)]),
    ("sardfq_quantizer_set_layer", C.c_int32, [OPAQUE, C.c_char_p, C.c_int32, C.c_int32]),
    ("sardfq_quantizer_calibrate", C.c_int32, [OPAQUE, P(C.c_float), C.c_int32]),
    ("sardfq_quantizer_reconstruct", C.c_int32, [OPAQUE, P(C.c_float), C.c_int32]),
    ("sardfq_quantizer_finalize", C.c_int32, [OPAQUE, P(OPAQUE)]),
    ("sardfq_quantizer_free", None, [OPAQUE]),
    ("sardfq_model_save", C.c_int32, [OPAQUE, C.c_char_p]),
]


def load_library(path):
    lib = C.CDLL(path)
    for name, restype, argtypes in PROTOTYPES:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


class SardfqError(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", default=os.environ.get("SARDFQ_LIB", "libsardfq.so.0"))
    ap.add_argument("model")
    ap.add_argument("data", nargs="?", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()

    lib = load_library(args.lib)

    def check(status, what):
        if status != 0:
            raise SardfqError("%s: %s: %s" % (what, lib.sardfq_status_string(status).decode(),
                                              lib.sardfq_last_error().decode()))

    print("libsardfq", lib.sardfq_version_string().decode())
    model, prior, gen, data = OPAQUE(), OPAQUE(), OPAQUE(), OPAQUE()
    quant, qmodel, qloaded = OPAQUE(), OPAQUE(), OPAQUE()
    try:
        mp = ModelParams()
        lib.sardfq_model_default_params(mp)
        check(lib.sardfq_model_load(args.model.encode(), mp, C.byref(model)), args.model)
        info = ModelInfo(struct_size=C.sizeof(ModelInfo))
        check(lib.sardfq_model_get_info(model, info), "model info")
        print("model: %dx%dx%d input, %d classes, %d blocks x %d heads, %d parameters" % (
            info.in_chans, info.img_h, info.img_w, info.num_classes, info.depth, info.num_heads,
            info.num_params))

        # Four attention priors over the patch grid; each sums to 1.
        pp = PriorParams()
        lib.sardfq_prior_default_params(pp)
        pp.seed = 7
        check(lib.sardfq_prior_create(info.grid_h, info.grid_w, pp, C.byref(prior)), "prior")
        cells = info.grid_h * info.grid_w
        priors = (C.c_float * (4 * cells))()
        check(lib.sardfq_prior_sample(prior, 4, priors), "sample priors")
        print("priors: 4 over %dx%d patches, sums %s" % (
            info.grid_h, info.grid_w, " ".join("%.4f" % sum(priors[i * cells:(i + 1) * cells])
                                               for i in range(4))))

        # Synthesise 4 images in 3 steps (real calibration sets use ~1000).
        gp = GeneratorParams()
        lib.sardfq_generator_default_params(gp)
        gp.n_images, gp.iters = 4, 3
        check(lib.sardfq_generator_create(model, gp, C.byref(gen)), "generator")
        report = SynthReport(struct_size=C.sizeof(SynthReport))
        while True:
            status = lib.sardfq_generator_step(gen, report)
            if status == E_STATE:  # all steps done
                break
            check(status, "synthesis step")
            print("  step %d/%d loss %.4f target_prob %.4f" % (report.step, report.total,
                                                                report.loss, report.target_prob))
        n_img = gp.n_images * info.in_chans * info.img_h * info.img_w
        images = (C.c_float * n_img)()
        targets = (C.c_float * (gp.n_images * info.num_classes))()
        check(lib.sardfq_generator_get_images(gen, images, n_img), "read images")
        check(lib.sardfq_generator_get_targets(gen, targets, len(targets)), "read targets")

        # Save them as a calibration set and read its sizes back.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "calib.safetensors").encode()
            check(lib.sardfq_calib_save(path, images, targets, gp.n_images, info.in_chans,
                                        info.img_h, info.img_w, info.num_classes), "calib save")
            dims = [C.c_int() for _ in range(5)]
            check(lib.sardfq_calib_load(path, None, None, *[C.byref(d) for d in dims]),
                  "calib load")
            print("calib: saved and read back %s" % "x".join(str(d.value) for d in dims[:4]))
            if [d.value for d in dims] != [gp.n_images, info.in_chans, info.img_h, info.img_w,
                                           info.num_classes]:
                raise SardfqError("calibration set sizes differ: %s" % [d.value for d in dims])

        # Quantize to W4A4 with the synthetic images (the head kept at 8 bits),
        # with a short block reconstruction; save and reload the result.
        qp = QuantParams()
        lib.sardfq_quant_default_params(qp)
        qp.weight_bits, qp.act_bits, qp.recon_iters = 4, 4, 2
        recon_calls = []
        qp.progress = PROGRESS_FN(lambda user, done, total, stage: recon_calls.append(done) or 0)
        check(lib.sardfq_quantizer_create(model, qp, C.byref(quant)), "quantizer")
        check(lib.sardfq_quantizer_set_layer(quant, b"head", 8, 8), "set_layer")
        check(lib.sardfq_quantizer_calibrate(quant, images, gp.n_images), "calibrate")
        check(lib.sardfq_quantizer_reconstruct(quant, images, gp.n_images), "reconstruct")
        check(lib.sardfq_quantizer_finalize(quant, C.byref(qmodel)), "finalize")
        print("quantize: W4A4, %d reconstruction progress calls" % len(recon_calls))
        with tempfile.TemporaryDirectory() as tmp:
            qpath = os.path.join(tmp, "q.safetensors").encode()
            check(lib.sardfq_model_save(qmodel, qpath), "save quantized model")
            size = os.path.getsize(qpath)
            check(lib.sardfq_model_load(qpath, mp, C.byref(qloaded)), "load quantized model")
        print("quantized model: %d bytes on disk" % size)

        # Evaluate on the first 200 images, with a progress callback.
        check(lib.sardfq_dataset_open(args.data.encode(), model, C.byref(data)), args.data)
        batches = []

        def on_progress(user_data, done, total, stage):
            batches.append(done)
            return 0  # nonzero would cancel

        ep = EvalParams()
        lib.sardfq_eval_default_params(ep)
        ep.limit, ep.batch, ep.progress = 200, 50, PROGRESS_FN(on_progress)
        for name, m in (("fp", model), ("w4a4", qloaded)):
            result = EvalResult(struct_size=C.sizeof(EvalResult))
            check(lib.sardfq_evaluate(m, data, ep, result), "evaluate " + name)
            print("%s: top1=%.2f top5=%.2f n=%d" % (name, 100.0 * result.top1_correct / result.n,
                                                    100.0 * result.top5_correct / result.n, result.n))
            if result.n != 200:
                raise SardfqError("evaluated %d images, expected 200" % result.n)
        print("eval: %d progress calls, of %d images" % (len(batches),
                                                          lib.sardfq_dataset_count(data)))
    except SardfqError as e:
        print("python_ctypes: %s" % e, file=sys.stderr)
        return 1
    finally:  # the generator before the model it uses; NULL is a no-op
        lib.sardfq_generator_free(gen)
        lib.sardfq_quantizer_free(quant)
        lib.sardfq_model_free(qmodel)
        lib.sardfq_model_free(qloaded)
        lib.sardfq_prior_free(prior)
        lib.sardfq_dataset_free(data)
        lib.sardfq_model_free(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
