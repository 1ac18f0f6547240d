/*
 * sardfq.h - public API of libsardfq, data-free quantization of Vision
 * Transformers (SARDFQ, Zhong et al., ICCV 2025).
 *
 * This header is the contract: anything not declared here is not part of the
 * API. It includes only <stddef.h> and <stdint.h>, uses no struct passed or
 * returned by value, and is usable from C99, C++ and FFIs (ctypes, cffi, Rust,
 * Go).
 *
 * Usage (error checks elided):
 *
 *     sardfq_model *m = NULL;
 *     sardfq_model_load("model.safetensors", NULL, &m);
 *     sardfq_model_info info;
 *     info.struct_size = sizeof info;
 *     sardfq_model_get_info(m, &info);
 *     float *logits = malloc(sizeof(float) * n * info.num_classes);
 *     sardfq_model_forward(m, images, n, logits);   // images: n x C x H x W
 *     sardfq_model_free(m);
 *
 * Threads. A loaded sardfq_model is immutable: its weights may be shared by
 * any number of threads, and sardfq_model_forward() may run on one model from
 * several threads at once (each call owns its scratch). A sardfq_state (the
 * activations kept for a backward pass and the attention read-back) and a
 * sardfq_dataset are used by one thread at a time. OpenBLAS threading is
 * process-global: when sardfq_model_params.n_threads > 0 the library runs
 * all its work (GEMMs split by rows included) on n_threads threads of its
 * own, and for the duration of each compute call on that model (forward,
 * backward, evaluate, synthesis steps, calibration) sets OpenBLAS to one
 * thread, restoring the previous count when the last of the library's
 * concurrent compute calls returns; hosts that call OpenBLAS from other
 * threads meanwhile should use n_threads == 0. With
 * n_threads == 0 the library never changes OpenBLAS settings, lets OpenBLAS
 * thread each GEMM, and uses OpenBLAS's thread count for its own loops.
 * The library's own threads are one process-wide pool, started on first use
 * and grown to the largest n_threads asked for: after a parallel step a
 * worker spins for about 0.1 ms, then sleeps (an idle library
 * uses no CPU). Each worker a call uses is pinned to another CPU of the
 * calling thread's affinity set than the caller's (re-pinned when the caller
 * moves; never the caller itself). A call that finds the pool busy with another thread's call
 * runs on short-lived threads of its own; results are the same either way.
 * Workers block all signals and are joined when the library is unloaded or
 * the process exits; a forked child starts without them.
 *
 * Errors. Every function that can fail returns a sardfq_status; SARDFQ_OK is
 * 0 and every error is negative. On failure the outputs and handles are left
 * unchanged and sardfq_last_error() returns a message naming the problem. The
 * library never aborts, exits, longjmps or prints.
 *
 * Images are float32, NCHW (n x C x H x W, row-major), already normalised with
 * the model's mean/std: (pixel/255 - mean[c]) / std[c].
 */
#ifndef SARDFQ_H
#define SARDFQ_H

#include <stddef.h>
#include <stdint.h>

#ifndef SARDFQ_API
#if defined(_WIN32) && !defined(SARDFQ_STATIC)
#ifdef SARDFQ_BUILD
#define SARDFQ_API __declspec(dllexport)
#else
#define SARDFQ_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define SARDFQ_API __attribute__((visibility("default")))
#else
#define SARDFQ_API
#endif
#endif

#ifndef SARDFQ_NODISCARD
#if defined(__GNUC__)
#define SARDFQ_NODISCARD __attribute__((warn_unused_result))
#else
#define SARDFQ_NODISCARD
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

#define SARDFQ_VERSION_MAJOR 0
#define SARDFQ_VERSION_MINOR 8
#define SARDFQ_VERSION_PATCH 1
#define SARDFQ_VERSION_NUMBER \
    (SARDFQ_VERSION_MAJOR * 10000 + SARDFQ_VERSION_MINOR * 100 + SARDFQ_VERSION_PATCH)
#define SARDFQ_VERSION_STRING "0.8.1"

/* Runtime version of the library actually linked; compare with the macros. */
SARDFQ_API const char *sardfq_version_string(void);
SARDFQ_API uint32_t sardfq_version_number(void);

/* ------------------------------------------------------------------------ */
/* Status codes (stable, append-only)                                       */
/* ------------------------------------------------------------------------ */

typedef int32_t sardfq_status;

#define SARDFQ_OK 0
#define SARDFQ_E_INVALID_ARG (-1) /* NULL pointer, count <= 0, bad value   */
#define SARDFQ_E_NOMEM (-2)       /* an allocation failed                  */
#define SARDFQ_E_IO (-3)          /* open/read/write/rename failed         */
#define SARDFQ_E_FORMAT (-4)      /* malformed file or buffer              */
#define SARDFQ_E_UNSUPPORTED (-5) /* valid but not supported (dtype, arch) */
#define SARDFQ_E_CANCELLED (-6)   /* a callback returned nonzero           */
#define SARDFQ_E_SHAPE (-7)       /* sizes do not match the model/state    */
#define SARDFQ_E_STATE (-8)       /* call out of order (e.g. backward
                                     without a forward that kept activations) */
#define SARDFQ_E_INTERNAL (-9)    /* a bug in the library; please report   */

/* A static, one-sentence description of s ("unknown status" otherwise). */
SARDFQ_API const char *sardfq_status_string(sardfq_status s);

/* Detail message of the last failed call on this thread ("" if none). The
 * string is owned by the library and valid until the next failing call on
 * the same thread. Thread: any (thread-local). */
SARDFQ_API const char *sardfq_last_error(void);

/* Progress callback used by long calls: done out of total units of the named
 * stage. Return nonzero to cancel; the call then returns SARDFQ_E_CANCELLED.
 * Called on the thread that made the call. */
typedef int (*sardfq_progress_fn)(void *user_data, int64_t done, int64_t total,
                                  const char *stage);

/* ------------------------------------------------------------------------ */
/* Model: a ViT graph with its weights                                      */
/* ------------------------------------------------------------------------ */

typedef struct sardfq_model sardfq_model;
typedef struct sardfq_state sardfq_state;

typedef struct sardfq_model_params {
    uint32_t struct_size; /* sizeof(sardfq_model_params), set by default_params */
    int32_t num_heads;    /* > 0 overrides the number of attention heads; 0 =
                             metadata, else embed_dim / 64 */
    int32_t n_threads;    /* > 0: the library's thread count for compute
                             calls (OpenBLAS is held at one thread during
                             them, see above); 0 = leave OpenBLAS as
                             configured and use its thread count */
} sardfq_model_params;

/* Executors of a quantized model (sardfq_model_set_executor; a model
 * starts with AUTO, and one made by sardfq_quantizer_finalize takes the
 * executor of the quantizer's model).
 * AUTO: inference forwards (sardfq_model_forward, sardfq_evaluate) run
 * every linear whose weights and input have integer codes as a u8 x s8
 * integer product with int32 sums (4-bit weights packed two per byte), and
 * q k^T on integer codes where q and k have them; the rest (LayerNorm,
 * GELU, softmax, residual adds, the log-sqrt2 probabilities times v, any op
 * without integer codes) runs in float on the fake-quantized values, and
 * sardfq_model_executor_report says which op runs how. The integer path's
 * sums are exact: each integer product differs from FAKE's float product of
 * the same input by float rounding only (one rounding of the exact sum
 * instead of a float accumulation), but over a whole forward a value that
 * sits on a quantizer's rounding boundary may be coded one step apart, so
 * logits can differ by more (top-1 within a few images in 10000, README
 * "Integer executor").
 * FAKE: 0.3's fake-quantized float forward (weights dequantized, activation
 * quantizers applied in float), kept as the reference. Forwards that keep
 * state for a backward (sardfq_model_forward_ex with flags) always run
 * FAKE. A quantized model keeps the weights of the linears that run on
 * integer kernels only as their codes, not as float32: FAKE and those
 * forwards dequantize them one linear at a time into scratch of the call
 * (the model is only read, so it stays shareable between threads), with
 * bitwise the values, and so the logits, of a float32 copy; loading a
 * quantized file packs its codes directly, without making that copy. The
 * kernels follow the CPU (AVX-512 VNNI, AVX2, portable C); the
 * environment variable SARDFQ_ISA=c|avx2|vnni, read when the quantized
 * model is made or loaded, forces one (all give bit-identical results). */
#define SARDFQ_EXECUTOR_AUTO 0
#define SARDFQ_EXECUTOR_FAKE 1

/* Fill *p with the defaults and set p->struct_size. p may not be NULL. */
SARDFQ_API void sardfq_model_default_params(sardfq_model_params *p);

/* Architectures (sardfq_model_info.arch). */
#define SARDFQ_ARCH_VIT 0            /* timm ViT / DeiT, class token */
#define SARDFQ_ARCH_DEIT_DISTILLED 1 /* class + distillation token, two heads */
#define SARDFQ_ARCH_SWIN 2           /* Swin Transformer (V1): shifted windows,
                                        patch merging, no class token */

/* Most stages a hierarchical model may have (sardfq_model_info.stage_*). */
#define SARDFQ_MAX_STAGES 8

/* Weight naming found in the file (sardfq_model_info.naming). */
#define SARDFQ_NAMING_TIMM 0
#define SARDFQ_NAMING_TORCHVISION 1
#define SARDFQ_NAMING_RANDOM 2 /* created by sardfq_model_create_random */

/* Where a configuration field came from (sardfq_model_info.source[]). */
#define SARDFQ_SOURCE_METADATA 0 /* the file's __metadata__ */
#define SARDFQ_SOURCE_SHAPES 1   /* inferred from tensor shapes */
#define SARDFQ_SOURCE_PARAMS 2   /* sardfq_model_params override */
#define SARDFQ_SOURCE_DEFAULT 3  /* the family's default */

/* Indices into sardfq_model_info.source[]. */
#define SARDFQ_FIELD_ARCH 0
#define SARDFQ_FIELD_IMG_SIZE 1
#define SARDFQ_FIELD_PATCH_SIZE 2
#define SARDFQ_FIELD_IN_CHANS 3
#define SARDFQ_FIELD_EMBED_DIM 4
#define SARDFQ_FIELD_DEPTH 5
#define SARDFQ_FIELD_NUM_HEADS 6
#define SARDFQ_FIELD_MLP_HIDDEN 7
#define SARDFQ_FIELD_NUM_CLASSES 8
#define SARDFQ_FIELD_MEAN 9
#define SARDFQ_FIELD_STD 10
#define SARDFQ_FIELD_CROP_PCT 11
#define SARDFQ_FIELD_LN_EPS 12
#define SARDFQ_FIELD_COUNT 13

typedef struct sardfq_model_info {
    uint32_t struct_size; /* caller sets sizeof(sardfq_model_info) */
    int32_t arch;         /* SARDFQ_ARCH_* */
    int32_t naming;       /* SARDFQ_NAMING_* */
    int32_t img_h, img_w; /* input size */
    int32_t patch_size;
    int32_t in_chans; /* 1 or 3 */
    int32_t embed_dim;
    int32_t depth;
    int32_t num_heads;
    int32_t head_dim;
    int32_t mlp_hidden;
    int32_t num_classes;
    int32_t grid_h, grid_w;    /* patch grid */
    int32_t num_prefix_tokens; /* 1 (class) or 2 (class + distillation) */
    int32_t num_tokens;        /* num_prefix_tokens + grid_h * grid_w */
    float mean[3], std[3];     /* per channel (only in_chans used) */
    float crop_pct;            /* evaluation crop fraction (timm) */
    float ln_eps;              /* LayerNorm epsilon */
    int64_t num_params;        /* parameter count */
    double flops_per_image;    /* forward FLOPs (2 per multiply-add) */
    int32_t source[SARDFQ_FIELD_COUNT]; /* SARDFQ_SOURCE_* per SARDFQ_FIELD_* */
    /* Since 0.3. A ViT/DeiT is one stage. A Swin model has num_stages
     * stages; stage s has stage_depth[s] blocks of width stage_dim[s] with
     * stage_heads[s] heads on a (grid_h >> s) x (grid_w >> s) token grid,
     * attends within window_size x window_size windows (clipped to the grid
     * when the grid is smaller), and the fields above describe its first
     * stage (embed_dim, num_heads, head_dim, mlp_hidden, grid, num_tokens;
     * depth is the total block count, num_prefix_tokens 0). */
    int32_t num_stages;
    int32_t window_size;                    /* 0 for ViT/DeiT */
    int32_t stage_depth[SARDFQ_MAX_STAGES]; /* unused entries 0 */
    int32_t stage_heads[SARDFQ_MAX_STAGES];
    int32_t stage_dim[SARDFQ_MAX_STAGES];
    int32_t num_features;     /* width of the head's input (the features) */
    int64_t attention_floats; /* floats per image of sardfq_state_get_attention */
    /* Since 0.5. A quantized model (made by sardfq_quantizer_finalize or
     * loaded from its file): its scheme (SARDFQ_SCHEME_*) and default
     * widths (per-layer overrides may differ; see the executor report),
     * the executor in effect (SARDFQ_EXECUTOR_*), how many of its quantized
     * ops (linears, q k^T, probs v) run on integer kernels under AUTO and
     * how many in float, and the bytes of weights its forward reads:
     * float32 for a floating-point model or under FAKE, the packed integer
     * codes with their per-row scales, zero points and sums plus the
     * float32 parameters outside the integer linears under AUTO (which is
     * also what a quantized model holds in memory for its weights: the
     * integer linears' weights are kept only as codes). */
    int32_t quantized;
    int32_t quant_scheme;
    int32_t weight_bits, act_bits;
    int32_t executor;
    int32_t int_ops, float_ops;
    int64_t weight_bytes;
} sardfq_model_info;

/* Load a safetensors file (F32, F16 or BF16 tensors; timm or torchvision ViT
 * names; Swin V1 with current timm names, older timm's (patch merging at
 * the end of stages, relative_position_index / attn_mask buffers, which
 * are ignored and rebuilt) or torchvision's). A Swin file's image size
 * comes from metadata "img_size" (default 224); every stage's grid must be
 * a whole number of windows (a grid smaller than the window clips it, as
 * timm does; torchvision pads instead, so its files need grids that are
 * multiples of the window) and even for patch merging. LayerNorm eps
 * defaults to 1e-6 (ViT) and 1e-5 (Swin). p may be NULL for the defaults;
 * p->num_heads cannot override a Swin model's heads. On success *out owns
 * the model; on failure *out is left unchanged. Thread: any. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_model_load(const char *path,
                                                            const sardfq_model_params *p,
                                                            sardfq_model **out);
/* Same from a buffer; the bytes are copied, buf may be freed afterwards. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_model_load_memory(const void *buf, size_t len,
                                                                   const sardfq_model_params *p,
                                                                   sardfq_model **out);
/* A model of a named architecture with random weights (timm's init:
 * truncated normal, std 0.02, LayerNorm 1/0), for benchmarks and tests.
 * arch: "vit_tiny", "vit_small", "vit_base", "deit_tiny", "deit_small",
 * "deit_base" (224x224, patch 16, 1000 classes), "swin_tiny", "swin_small",
 * "swin_base" (timm's swin_*_patch4_window7_224; since 0.3). */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_model_create_random(const char *arch,
                                                                     uint64_t seed,
                                                                     const sardfq_model_params *p,
                                                                     sardfq_model **out);
/* Free a model. NULL is a no-op. Free every sardfq_state of the model first. */
SARDFQ_API void sardfq_model_free(sardfq_model *m);

/* Fill *out (out->struct_size must be set; fields beyond it are not
 * written). */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_model_get_info(const sardfq_model *m,
                                                                sardfq_model_info *out);

/* Since 0.5: how a quantized model's forward runs its quantized ops, one
 * line per op ("<name> int|float <detail>": the integer operand types and
 * widths, or why the op runs as fake-quantized float), or NULL for a
 * floating-point model. Owned by the model. */
SARDFQ_API const char *sardfq_model_executor_report(const sardfq_model *m);
/* Since 0.5: choose how m's forward runs when m is quantized
 * (SARDFQ_EXECUTOR_AUTO or _FAKE; a floating-point model accepts either and
 * is not affected). Not thread-safe against forwards running on m: set it
 * before sharing the model. (An executor field in sardfq_model_params
 * would have grown a struct that sardfq_model_default_params fills whole,
 * past the end of a caller's struct compiled against the 0.4 header.)
 * SARDFQ_E_INVALID_ARG for another value or a NULL model. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_model_set_executor(sardfq_model *m, int32_t executor);

/* Value of a __metadata__ key of the loaded file, or NULL. Owned by the
 * model. */
SARDFQ_API const char *sardfq_model_get_metadata(const sardfq_model *m, const char *key);

/* Number of __metadata__ entries, and the key of entry i (0 <= i < count;
 * NULL otherwise), in file order. Owned by the model. */
SARDFQ_API int32_t sardfq_model_metadata_count(const sardfq_model *m);
SARDFQ_API const char *sardfq_model_metadata_key(const sardfq_model *m, int32_t i);

/* Inference: logits (n x num_classes) for n images. Keeps no activation;
 * thread-safe on a shared model. For a distilled DeiT the logits are the mean
 * of the two heads. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_model_forward(const sardfq_model *m, const float *images,
                                                               int n, float *logits);

/* ------------------------------------------------------------------------ */
/* State: forward that keeps what backward and attention read-back need     */
/* ------------------------------------------------------------------------ */

/* Keep the class-token attention rows of every block and head. */
#define SARDFQ_FORWARD_ATTENTION 1u
/* Keep the activations sardfq_model_backward needs. */
#define SARDFQ_FORWARD_BACKWARD 2u

/* Keep the final class-token feature (after the last LayerNorm, the head's
 * input). */
#define SARDFQ_FORWARD_FEATURES 4u

/* A per-thread run state bound to model m (which must outlive it). */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_state_create(const sardfq_model *m,
                                                              sardfq_state **out);
SARDFQ_API void sardfq_state_free(sardfq_state *s);

/* Forward n images with state s; flags is a set of SARDFQ_FORWARD_*.
 * logits may be NULL. A successful call replaces the previous call's
 * activations. A failed call (e.g. SARDFQ_E_NOMEM when the state must grow
 * for more images or flags) leaves the state as it was: the previous
 * forward's read-backs and sardfq_model_backward stay available, unchanged
 * bit for bit. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_model_forward_ex(const sardfq_model *m, sardfq_state *s,
                                                                  const float *images, int n,
                                                                  uint32_t flags, float *logits);

/* Attention read-back of the last forward_ex with SARDFQ_FORWARD_ATTENTION,
 * info.attention_floats per image.
 * ViT/DeiT: class-token rows, out[((i * depth + block) * num_heads + head) *
 * num_tokens + t] is the softmax weight the class token (query 0) gives token
 * t (0 = class token, then the distillation token if any, then the patches
 * in raster order) in image i.
 * Swin (no class token): the mean attention over all queries. For each block
 * in order (stage by stage), each head of its stage, one value per token of
 * the stage's grid in raster order of image positions (windows and shifts
 * undone): a[t] = (1 / tokens) * sum over queries q of P[q][t], where
 * P[q][t] is the weight query q gives key t (0 outside q's window); each
 * head's values sum to 1.
 * count is the number of floats out can hold and must be at least
 * n * attention_floats. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_state_get_attention(const sardfq_state *s,
                                                                     float *out, size_t count);

/* Final features of the last forward_ex with SARDFQ_FORWARD_FEATURES (the
 * head's input: the class token after the last LayerNorm, or for Swin the
 * mean over tokens after it): out[i * num_features + d]; count >= n *
 * num_features. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_state_get_features(const sardfq_state *s,
                                                                    float *out, size_t count);

/* Backward to the input of the last forward_ex (which needs
 * SARDFQ_FORWARD_BACKWARD): given dlogits = dL/dlogits (n x num_classes, may
 * be NULL for zero) and dattn = dL/d(attention read-back) laid out as
 * in sardfq_state_get_attention (may be NULL for zero), writes
 * dimages = dL/dimages (n x C x H x W). The kept activations stay valid, so
 * backward may be called again with other gradients. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_model_backward(const sardfq_model *m, sardfq_state *s,
                                                                const float *dlogits,
                                                                const float *dattn,
                                                                float *dimages);

/* ------------------------------------------------------------------------ */
/* Datasets and evaluation                                                  */
/* ------------------------------------------------------------------------ */

typedef struct sardfq_dataset sardfq_dataset;

/* Open a labelled image set, preprocessed for model m (its input size,
 * channels, mean/std and crop_pct are copied; m may be freed afterwards):
 * - a folder with MNIST-format IDX files (gzip or not): t10k-images-idx3-ubyte
 *   and t10k-labels-idx1-ubyte preferred, else train-*; the images must have
 *   the model's input size;
 * - a folder of class sub-folders of PNG images (sorted names = class
 *   indices, as torchvision's ImageFolder): bicubic resize of the short side
 *   to size / crop_pct, centre crop, the model's mean/std (timm's eval
 *   transform).
 * Thread: the dataset is used by one thread at a time. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_dataset_open(const char *path,
                                                              const sardfq_model *m,
                                                              sardfq_dataset **out);
SARDFQ_API void sardfq_dataset_free(sardfq_dataset *d);
/* Number of images. */
SARDFQ_API int64_t sardfq_dataset_count(const sardfq_dataset *d);
/* Read images [start, start + n) into images (n x C x H x W, normalised) and
 * their labels into labels (may be NULL). */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_dataset_read(sardfq_dataset *d, int64_t start,
                                                              int n, float *images,
                                                              int32_t *labels);

typedef struct sardfq_eval_params {
    uint32_t struct_size;
    int64_t limit;               /* evaluate the first limit images; 0 = all */
    int32_t batch;               /* images per forward; 0 = 64 */
    sardfq_progress_fn progress; /* may be NULL; stage "eval" */
    void *user_data;
} sardfq_eval_params;

SARDFQ_API void sardfq_eval_default_params(sardfq_eval_params *p);

typedef struct sardfq_eval_result {
    uint32_t struct_size;
    int64_t n;            /* images evaluated */
    int64_t top1_correct; /* label is the arg-max (ties: lowest index) */
    int64_t top5_correct; /* label among the 5 largest logits */
} sardfq_eval_result;

/* Top-1/top-5 of m on d. p may be NULL for the defaults. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_evaluate(const sardfq_model *m, sardfq_dataset *d,
                                                          const sardfq_eval_params *p,
                                                          sardfq_eval_result *out);

/* Since 0.5: sardfq_evaluate over the images first, first + 1, ... (at
 * most p->limit of them when it is > 0; 0 <= first <= the image count).
 * Batches are read from first on, so a range that starts at a multiple of
 * the batch size sees the batches a whole-set run sees, and the counts of
 * consecutive ranges add up to the whole run's. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_evaluate_range(const sardfq_model *m, sardfq_dataset *d,
                                                                const sardfq_eval_params *p, int64_t first,
                                                                sardfq_eval_result *out);

/* ------------------------------------------------------------------------ */
/* Attention priors                                                         */
/* ------------------------------------------------------------------------ */

/* A prior is a random distribution over the grid_h x grid_w patch grid (the
 * target of one class-token attention row, without the prefix tokens). Cell
 * (i, j) sits at its centre (i + 0.5, j + 0.5). Each prior is a mixture of
 * k ~ U{1..K} components; each component has a centre uniform over the grid,
 * axis-aligned spreads drawn independently per axis as U(scale_min,
 * scale_max) times that axis's grid side, and a weight from a symmetric
 * Dirichlet(1). A GMM component is exp(-dy^2/2sy^2 - dx^2/2sx^2) (spread =
 * standard deviation); a LAPLACE component is exp(-|dy|/sy - |dx|/sx) (L1,
 * spread = Laplace scale b). Each component is normalised to mass 1 over the
 * grid before weighting (however small its spread: in the limit its mass
 * falls on the cell nearest its centre), and the mixture is normalised to
 * sum to 1. Same seed -> the same bits on every platform (no libm
 * transcendental is used); GMM and LAPLACE priors of one seed share their
 * centres, spreads and weights. */
typedef struct sardfq_prior sardfq_prior;

#define SARDFQ_PRIOR_GMM 0     /* mixture of 2-D Gaussian blobs (default) */
#define SARDFQ_PRIOR_LAPLACE 1 /* mixture of 2-D Laplace kernels */

typedef struct sardfq_prior_params {
    uint32_t struct_size;   /* set by sardfq_prior_default_params */
    int32_t kind;           /* SARDFQ_PRIOR_GMM or SARDFQ_PRIOR_LAPLACE */
    int32_t max_components; /* K in 1..64: k ~ U{1..K} components; default 5 */
    float scale_min;        /* component spread (std for GMM, b for Laplace) */
    float scale_max;        /* as a fraction of the grid side: U(min, max),
                               0 < min <= max <= 10; defaults 0.08 and 0.35 */
    uint64_t seed;          /* same seed -> same priors; default 0 */
} sardfq_prior_params;

/* Fill *p with the defaults and set p->struct_size (NULL is a no-op). */
SARDFQ_API void sardfq_prior_default_params(sardfq_prior_params *p);

/* A sampler of priors over a grid_h x grid_w patch grid (each side in
 * 1..4096, at most 1 << 20 cells). p may be NULL for the defaults. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_prior_create(int grid_h, int grid_w,
                                                              const sardfq_prior_params *p,
                                                              sardfq_prior **out);
SARDFQ_API void sardfq_prior_free(sardfq_prior *p);

/* Draw count priors into out (count x grid_h x grid_w floats, raster
 * order): each non-negative and summing to 1 over the grid. Successive calls
 * continue the seeded sequence. Thread: one thread per handle. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_prior_sample(sardfq_prior *p, int count,
                                                              float *out);

/* ------------------------------------------------------------------------ */
/* Synthetic calibration images                                             */
/* ------------------------------------------------------------------------ */

typedef struct sardfq_generator sardfq_generator;

#define SARDFQ_SYNTH_NOISE 0  /* N(0, 1) images in normalised space, no steps */
#define SARDFQ_SYNTH_PSAQ 1   /* PSAQ-ViT: patch-similarity entropy + CE + TV */
#define SARDFQ_SYNTH_SARDFQ 2 /* SARDFQ: a APA + SL (+ MSR regions) + TV */

typedef struct sardfq_generator_params {
    uint32_t struct_size;
    int32_t method;   /* SARDFQ_SYNTH_*; default SARDFQ_SYNTH_SARDFQ */
    int32_t n_images; /* images to synthesise; default 32 */
    int32_t iters;    /* total optimisation steps; default 1000 */
    int32_t rounds;   /* the steps are split in this many rounds, each with
                         its own warm-up + cosine learning rate; the jitter
                         range grows with the round; default 2 */
    int32_t warmup;   /* linear warm-up steps per round; default 100 */
    float lr;         /* Adam learning rate on the pixels; default 0.2 */
    float beta1, beta2, adam_eps; /* default 0.5, 0.9, 1e-8 */
    int32_t use_apa;  /* SARDFQ switches, default 1 each: Attention Priors */
    int32_t use_msr;  /* Alignment, Multi-Semantic Reinforcement, */
    int32_t use_sl;   /* Soft-Label learning (else one-hot cross-entropy) */
    float apa_weight; /* alpha, the APA weight; default 100, chosen on the
                         default model (7 x 7 patches) by the ablation in
                         README; the MSE scales as 1/patches^2, so larger
                         grids want a proportionally larger alpha */
    float tv_weight;  /* default 0.05 */
    float tv_min, tv_max; /* TV target tau ~ U(min, max) for 32 images of
                             3x224x224, scaled by the square root of the
                             element count; default 2500, 3000 */
    float sl_min, sl_max; /* soft-label logits ~ U(min, max); default 5, 10 */
    int32_t msr_regions;  /* K_MSR: up to this many regions per image and
                             step (1..4); default 4 */
    int32_t prior_kind;   /* SARDFQ_PRIOR_*; default GMM */
    int32_t prior_components; /* K_APA; default 5 */
    float prior_scale_min, prior_scale_max; /* see sardfq_prior_params */
    int32_t micro_batch;  /* items (images and regions) per forward/backward
                             within a coupling group (bounds memory; PSAQ's
                             KDE grid is per micro-batch); default 32 */
    uint64_t seed;        /* see "Randomness contract" below */
    sardfq_progress_fn progress; /* sardfq_generator_run: stage "synth" */
    void *user_data;
} sardfq_generator_params;

/* Coupling groups: a set of images is optimised as independent
 * groups of SARDFQ_SYNTH_GROUP consecutive images by index (0..31, 32..63,
 * ...; the last group may be smaller). Within a group, as for a 32-image set
 * in PSAQ-ViT and SARDFQ: one jitter (roll and flip) per step, one TV
 * target tau and one |TV - tau| term over the group's images, the
 * micro-batches (the group's whole images, then its MSR regions, in index
 * order, micro_batch at a time; PSAQ's KDE grid spans one micro-batch), and
 * each loss term is a mean over the group's images (regions: over the
 * group's regions of the step). The loss minimised is the sum over groups;
 * Adam acts per pixel, so groups do not interact.
 *
 * Shards (sardfq_generator_create_shard, since 0.5): p->n_images images
 * starting at first_image of a set of total_images. For psaq and sardfq
 * the generator computes every image of the groups its shard touches (a
 * shard of whole groups does no extra work) and returns only its own;
 * sardfq_generator_get_images, _get_targets and _set_priors see the
 * shard's n_images images. sardfq_generator_create makes the whole set
 * (first_image 0, total_images = n_images).
 *
 * Randomness contract: every random draw comes from a stream keyed by
 * (seed, index, step, stream): the initial noise, the targets and soft
 * logits, the APA priors and the MSR region count and boxes by image index;
 * the TV target and the jitter by group index; each primary-class cycle by
 * its cycle index (image index / num_classes). Two runs give byte-identical
 * images and targets for image i when they have the same model file,
 * parameters (everything in this struct except n_images, progress and
 * user_data; the set size total_images counts), set-level priors (when
 * set_priors is used, on every image of i's group), the same machine
 * kind (CPU, OpenBLAS, compiler) and a library thread count n_threads > 0;
 * they then agree for any split into shards, number of processes and
 * thread count (checked: 1 and 2 threads, 1, 2 and 4 processes).
 * micro_batch counts: it sets which items share a GEMM, and the head's
 * small GEMM (items x classes x features) is not batch-invariant; for the
 * same reason a micro_batch of 128 or more, which the library may split
 * by rows across its threads, needs the same n_threads too. */
#define SARDFQ_SYNTH_GROUP 32

SARDFQ_API void sardfq_generator_default_params(sardfq_generator_params *p);

/* What one step did. Loss terms are the unweighted values; loss is the
 * weighted total that was minimised. Terms a method does not use are 0.
 * Each term is the mean over the generator's coupling groups of the
 * group's term (for a set of up to 32 images: the set's). */
typedef struct sardfq_synth_report {
    uint32_t struct_size;
    int32_t step;  /* steps done (1-based after the first step) */
    int32_t total; /* total steps */
    float lr;
    float loss;    /* weighted total */
    float apa;     /* L_APA */
    float ce;      /* soft (SL) or one-hot cross-entropy on whole images */
    float msr;     /* cross-entropy on the MSR regions */
    float tv;      /* |TV - tau| */
    float pse;     /* PSAQ-ViT: minus the patch-similarity entropy */
    float target_prob; /* mean softmax probability of each image's
                          first target class */
    float seconds; /* wall time of the step */
    float model_seconds; /* of which inside the model's forward/backward */
} sardfq_synth_report;

/* A generator on model m (which must outlive it). Draws the initial noise,
 * the targets and (for APA) one prior per (image, block, head) from
 * p->seed (keyed by image index, see above). p may be NULL for the
 * defaults. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_generator_create(const sardfq_model *m,
                                                                  const sardfq_generator_params *p,
                                                                  sardfq_generator **out);
SARDFQ_API void sardfq_generator_free(sardfq_generator *g);

/* Since 0.5: a generator for the shard of p->n_images images starting at
 * image first_image of a set of total_images images (first_image >= 0,
 * first_image + p->n_images <= total_images <= 2^30); see "Shards" above.
 * (New parameters come as arguments rather than as params fields:
 * sardfq_generator_default_params fills the whole struct, so a grown
 * struct would overflow the smaller struct of a program built against an
 * older header.) */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_generator_create_shard(const sardfq_model *m,
                                                                        const sardfq_generator_params *p,
                                                                        int first_image, int total_images,
                                                                        sardfq_generator **out);

/* Replace the APA priors (e.g. real attention maps) of the generator's
 * n_images images (a shard's own; the other images of its coupling groups
 * keep their drawn priors). ViT/DeiT: n_images x
 * depth x num_heads x (grid_h * grid_w) floats. Swin: n_images x
 * attention_floats, laid out as the attention read-back (per block and
 * head, the stage's grid); the loss then renormalises each prior to the
 * mass windowed attention gives each window (see README, Synthesis).
 * count is the number of floats. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_generator_set_priors(sardfq_generator *g,
                                                                      const float *priors,
                                                                      size_t count);

/* One optimisation step; report may be NULL. SARDFQ_E_STATE once all steps
 * are done. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_generator_step(sardfq_generator *g,
                                                                sardfq_synth_report *report);

/* Run the remaining steps, calling the progress callback after each;
 * report (may be NULL) receives the last step's report. A cancelled run can
 * be resumed by calling run or step again. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_generator_run(sardfq_generator *g,
                                                               sardfq_synth_report *report);

/* The current images (n_images x C x H x W, normalised) and per-image target
 * distributions (n_images x num_classes). count = floats out can hold. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_generator_get_images(const sardfq_generator *g,
                                                                      float *out, size_t count);
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_generator_get_targets(const sardfq_generator *g,
                                                                       float *out, size_t count);

/* ------------------------------------------------------------------------ */
/* Calibration sets and images                                              */
/* ------------------------------------------------------------------------ */

/* Write a calibration set: safetensors with `images` [n, C, H, W] F32
 * (normalised) and `targets` [n, classes] F32 (rows are distributions; may
 * be NULL, then none is written), through a temporary file and rename. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_calib_save(const char *path, const float *images,
                                                            const float *targets, int n, int channels,
                                                            int height, int width, int classes);

/* Read a calibration set written by sardfq_calib_save (or any safetensors
 * with an F32/F16/BF16 `images` [n, C, H, W] tensor and optional `targets`).
 * First call with images == NULL to get the sizes (targets_classes is 0 when
 * the file has none), then with buffers of n*C*H*W and n*classes floats and
 * the size variables still holding what the first call returned (a mismatch
 * is SARDFQ_E_SHAPE: it is how the call knows the buffers fit). targets may
 * be NULL on the second call. Values must be finite and targets
 * non-negative (save: SARDFQ_E_INVALID_ARG, load: SARDFQ_E_FORMAT). */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_calib_load(const char *path, float *images,
                                                            float *targets, int *n, int *channels,
                                                            int *height, int *width,
                                                            int *targets_classes);

/* Write images (n x C x H x W, normalised for model m) as 8-bit PNGs:
 * de-normalised with m's mean/std, clamped to [0, 255], gray or RGB:
 * "<dir>/<NNN>.png" (NNN = index, 3 digits or more) and, when sheet is
 * nonzero, "<dir>/sheet.png", a contact sheet of all images in a grid with a
 * 2-pixel gap between images (no outer border; at most 32768 pixels a
 * side). Everything is validated before the first file is written; each
 * file is written to a temporary name and renamed, so only an I/O error can
 * stop the call midway (files already written then stay). */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_images_write_png(const char *dir, const sardfq_model *m,
                                                                  const float *images, int n,
                                                                  int sheet);


/* ------------------------------------------------------------------------ */
/* Quantization (since 0.2)                                                 */
/* ------------------------------------------------------------------------ */

/* A quantizer turns a floating-point model and a calibration batch into a
 * quantized model: create -> (set_layer) -> calibrate -> (reconstruct) ->
 * finalize. The quantized model is a sardfq_model: forward, evaluate,
 * get_info, save and load work on it; its weights hold the fake-quantized
 * values (q - z) * scale and its forward quantizes the activations at the
 * scheme's points, so every value entering a matrix product lies on its
 * integer grid. It has no backward pass (SARDFQ_E_UNSUPPORTED) and cannot
 * drive a generator. Metadata "sardfq.quant.scheme", ".weight_bits" and
 * ".act_bits" say how it was made.
 * Swin models (since 0.3): RepQ-ViT and (since 0.4) PSAQ-ViT's min/max
 * scheme at the Swin's counterparts of the ViT's points (README), block
 * reconstruction since 0.4; the relative position bias and the
 * shifted-window masks stay floating point. */
typedef struct sardfq_quantizer sardfq_quantizer;

#define SARDFQ_SCHEME_REPQ 0   /* RepQ-ViT (ICCV 2023), see README */
#define SARDFQ_SCHEME_MINMAX 1 /* PSAQ-ViT's min/max quantizer */

typedef struct sardfq_quant_params {
    uint32_t struct_size;
    int32_t weight_bits; /* 2..8; default 4 */
    int32_t act_bits;    /* 2..8; default 4 */
    int32_t scheme;      /* SARDFQ_SCHEME_*; default REPQ */
    int32_t n_threads;   /* threads of the calibration searches (0 = the
                            model's count); results do not depend on it */
    int32_t recon_iters; /* sardfq_quantizer_reconstruct: Adam iterations
                            per block; default 100 (SARDFQ's setting) */
    float recon_lr;      /* learning rate of the activation step sizes,
                            cosine-decayed to 0; default 4e-5 (SARDFQ) */
    sardfq_progress_fn progress; /* reconstruct: stage "reconstruct", one
                                    unit per iteration; may cancel */
    void *user_data;
} sardfq_quant_params;

SARDFQ_API void sardfq_quant_default_params(sardfq_quant_params *p);

/* A quantizer for model fp (which must outlive it; it is not modified).
 * p may be NULL for the defaults. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_quantizer_create(const sardfq_model *fp,
                                                                  const sardfq_quant_params *p,
                                                                  sardfq_quantizer **out);
SARDFQ_API void sardfq_quantizer_free(sardfq_quantizer *q);

/* Per-layer override, before calibrate: every layer whose name matches
 * pattern (fnmatch(3) syntax, e.g. "head", "blocks.*.mlp.fc2",
 * "blocks.0.attn.matmul2") gets weight_bits for its weight and act_bits for
 * its input(s); 0 keeps that side in floating point, 2..8 sets the bits.
 * Layers: "patch_embed" (its input is the image; RepQ's default is 8 bits),
 * "blocks.<l>.attn.qkv", ".attn.matmul1" (inputs q and k; no weight),
 * ".attn.matmul2" (softmax and v), ".attn.proj", ".mlp.fc1", ".mlp.fc2",
 * "head", "head_dist". Swin models use timm's names: "layers.<s>.blocks.<b>"
 * in place of "blocks.<l>", and "layers.<s>.downsample.reduction" (the
 * patch-merging linear of stage s >= 1). A pattern that matches nothing is
 * SARDFQ_E_INVALID_ARG. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_quantizer_set_layer(sardfq_quantizer *q,
                                                                     const char *pattern,
                                                                     int32_t weight_bits,
                                                                     int32_t act_bits);

/* Calibrate on n images (n x C x H x W, normalised for fp), all in one
 * batch as both reference implementations do: RepQ-ViT initialises each
 * quantizer the first time data reaches it, with everything upstream
 * already quantized, then folds the per-channel post-LayerNorm quantizers
 * into LayerNorm and the next linear (qkv, fc1 and, on Swin, the
 * patch-merging reduction, which thereby gains a bias); on Swin the
 * matmul1 quantizer sees q times the attention scale, as in timm's and
 * RepQ-ViT's window attention; PSAQ-ViT records the min/max of one
 * floating-point forward (on Swin its scores point sees scale q k^T plus
 * the relative position bias and the mask). Calling it again restarts from
 * the FP model. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_quantizer_calibrate(sardfq_quantizer *q,
                                                                     const float *images,
                                                                     int32_t n);

/* Optional, after calibrate (RepQ-ViT scheme only; minmax is
 * SARDFQ_E_UNSUPPORTED; Swin models since 0.4): block reconstruction on n
 * images (normally the calibration images). Block by block, with the
 * quantized model's input to the block and the FP model's output of it
 * (before any patch merging that follows) as target, minimise the squared
 * error of the block output by learning the rounding of each weight
 * (AdaRound: rounding variables with Adam lr 1e-3, rounding regulariser
 * 0.01 with beta annealed 20 -> 2 after 20% of the iterations, then
 * hardened) and the step sizes of the uniform activation quantizers inside
 * the block (LSQ gradients, Adam with recon_lr and cosine decay); the
 * softmax's log-sqrt2 scale, the image and head quantizers stay as
 * calibrated. Gradients pass the rounding straight through. On failure or
 * cancellation the quantizer keeps its calibrated state. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_quantizer_reconstruct(sardfq_quantizer *q,
                                                                       const float *images,
                                                                       int32_t n);

/* The quantized model (a new handle, independent of q). SARDFQ_E_STATE
 * before a successful calibrate. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_quantizer_finalize(sardfq_quantizer *q,
                                                                    sardfq_model **out);

/* Save a model (floating-point or quantized) as safetensors with timm names
 * (Swin: current timm's, plus "layers.<s>.downsample.reduction.bias" once
 * reparameterised) and the configuration in __metadata__, through a temporary file and
 * rename. A quantized model stores each quantized weight as U8 codes (two
 * 4-bit codes per byte, low nibble first, when its bits are <= 4) with
 * per-row "<layer>.weight_scale" / "<layer>.weight_zero", and each
 * activation quantizer as "<point>.scale" / "<point>.zero"; loading it back
 * gives bitwise the same logits. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_model_save(const sardfq_model *m, const char *path);

/* ======================================================================= */
/* Experimental (since 0.6): may change in a minor release. Define         */
/* SARDFQ_EXPERIMENTAL before including this header to use it; its symbols */
/* are in version nodes SARDFQ_EXPERIMENTAL_0.6, _0.7 and _0.8.            */
/* ======================================================================= */
#ifdef SARDFQ_EXPERIMENTAL

/* ONNX export flavors. EXACT reproduces the library's own arithmetic: the
 * FP32 network as standard ops and, for a quantized model, every weight as
 * its integer codes behind a per-output-channel DequantizeLinear and every
 * active activation quantizer at its point, as QuantizeLinear +
 * DequantizeLinear (uint8; a Clip to the 2^b levels first when b < 8), or
 * as the same arithmetic in float ops (Div, Round, Add, Clip, Sub, Mul)
 * where the zero point is not an integer in [0, 255]; the log-sqrt2
 * softmax quantizer as float ops (Log, Round, Clip, Pow, Where). */
#define SARDFQ_ONNX_EXACT 0
/* ORT lays a quantized model out for ONNX Runtime's CPU integer kernels:
 * every quantized linear and q k^T becomes a uint8-activation x uint8-code
 * product that ONNX Runtime fuses (MatMulIntegerToFloat). Where the
 * library's quantizer has no affine uint8 form it takes the nearest one:
 * the log-sqrt2 softmax quantizer becomes uniform 8-bit on [0, 1] (scale
 * 1/255, zero point 0), and PSAQ-ViT's rint(x/D + z) becomes
 * QuantizeLinear's rint(x/D) + z (they differ at float ties). A
 * floating-point model is written as by EXACT. */
#define SARDFQ_ONNX_ORT 1

typedef struct sardfq_export_params {
    uint32_t struct_size; /* sizeof(sardfq_export_params), set by default_params */
    int32_t flavor;       /* SARDFQ_ONNX_* (default EXACT) */
    int32_t batch;        /* > 0: a fixed batch dimension; 0 (default): a
                             dynamic one, named "N" */
} sardfq_export_params;

/* Fill *p with the defaults and set p->struct_size. */
SARDFQ_API void sardfq_export_default_params(sardfq_export_params *p);

/* Write model m as an ONNX file (IR 8, opset 17: LayerNormalization-17,
 * GELU as its erf form, per-axis DequantizeLinear) at path, through a
 * temporary file in the same directory and rename (nothing is left on
 * failure). The graph takes "input", the normalised images (N x C x H x W,
 * as sardfq_model_forward), and gives "logits" (N x classes). Its
 * metadata_props carry the architecture, the normalisation (mean, std,
 * crop_pct) and, for a quantized model, the scheme and bits. p may be NULL
 * for the defaults. Built without ONNX support (meson feature `onnx`:
 * protobuf-c and onnx.proto) it returns SARDFQ_E_UNSUPPORTED. Thread: any
 * (m is only read). */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_model_export_onnx(const sardfq_model *m, const char *path,
                                                                   const sardfq_export_params *p);

/* Since 0.7. Inter-head attention alignment in synthesis (after MimiQ,
 * AAAI 2025: on real images the heads of a block attend alike, on
 * synthetic images they do not): adds weight x L_head to the loss of the
 * psaq and sardfq methods, where L_head is, per whole image, the mean over
 * blocks of the mean over each block's head pairs of 1 - cos between the
 * two heads' attention read-backs (ViT: the class-token rows over the
 * patch tokens; Swin: the mean attention on the stage's grid), averaged
 * over the images like L_APA (the regions of MSR do not take part).
 * 0 (the default) turns it off. A flat image gives every head the same
 * attention and so minimises the term: keep the weight small (README,
 * "Beyond SARDFQ": 1 is harmless on the Fashion-MNIST ViT and Swin, 10
 * makes the Swin's images flat and its calibration useless, 100 does so
 * on the ViT). It takes effect from the next step and is
 * part of the parameters that the randomness contract names: the same
 * weight gives the same images. (A setter rather than a params field: see
 * sardfq_generator_create_shard.) SARDFQ_E_INVALID_ARG for a negative or
 * non-finite weight. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_generator_set_head_align(sardfq_generator *g, float weight);

/* Since 0.8. The similarity form of the head-alignment term: COSINE (the
 * default, as in 0.7) or SSIM, 1 - SSIM between the two heads' read-backs
 * taken as one window (population means, variances and covariance;
 * C1 = 0.01^2, C2 = 0.03^2 for the data range 1 of a probability). SSIM
 * also asks the heads for the same mean and spread, which the cosine does
 * not (README, "Beyond SARDFQ", compares the two). Like the weight, part
 * of the parameters the randomness contract names. SARDFQ_E_INVALID_ARG
 * for another value. */
typedef enum { SARDFQ_HEAD_ALIGN_COSINE = 0, SARDFQ_HEAD_ALIGN_SSIM = 1 } sardfq_head_align_form;
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_generator_set_head_align_form(sardfq_generator *g,
                                                                               sardfq_head_align_form form);

/* Since 0.7. Head-wise attention distillation in block reconstruction
 * (after MaskAQ, ICML 2026): with weight > 0, each block's loss gains
 * weight x L_attn, the mean over the block's attention rows (image,
 * window, head, query) of KL(P_fp || P_q) between the FP block's attention
 * probabilities (on the FP model's input to the block) and the quantized
 * block's softmax output (before the log-sqrt2 quantizer), head by head;
 * its gradient reaches the rounding variables and step sizes through q, k
 * and the layers before them. 0 (the default) turns it off; it applies to
 * the next sardfq_quantizer_reconstruct. SARDFQ_E_INVALID_ARG for a
 * negative or non-finite weight. */
SARDFQ_API SARDFQ_NODISCARD sardfq_status sardfq_quantizer_set_recon_attn(sardfq_quantizer *q, float weight);

#endif /* SARDFQ_EXPERIMENTAL */

#ifdef __cplusplus
}
#endif

#endif /* SARDFQ_H */
