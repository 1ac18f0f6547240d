/* synth.h - generator internals shared with the tests. */
#ifndef SFQ_SYNTH_H
#define SFQ_SYNTH_H

#include "sardfq.h"

#include <stdint.h>

/* dst = flip(roll(src, (dy, dx))) on an h x w grid: torch.roll semantics
 * (dst[y][x] = src[y - dy][x - dx], indices mod h, w), then a horizontal
 * flip when flip is nonzero. */
void sfq_jitter(const float *src, float *dst, int h, int w, int dy, int dx, int flip);
/* Its adjoint (the inverse permutation), accumulated: dsrc += J^T ddst. */
void sfq_jitter_adjoint(const float *ddst, float *dsrc, int h, int w, int dy, int dx, int flip);

/* Replay of one step from outside (for tests only: tests/test_synth.c
 * replays the PyTorch reference step of
 * tests/reference/make_generator_fixtures.py). The generator's state is
 * overwritten with the given one and the next step uses the given draws
 * instead of its random sequence (which it leaves untouched); everything
 * else (losses, weights, micro-batches, prior roll, Adam, clamp) is the
 * ordinary step. The priors are set beforehand with
 * sardfq_generator_set_priors. Without this call nothing changes. */
typedef struct {
    /* the state at the start of the step */
    const float *images, *adam_m, *adam_v; /* n_images x C x H x W each */
    int steps_done;                        /* 0 .. total - 1 */
    const int32_t *classes;                /* n_images x 4 */
    const float *targets;                  /* n_images x num_classes */
    const float *region_targets;           /* n_images x 4 x num_classes */
    float tau;                             /* the TV target */
    /* the step's draws */
    int dy, dx, flip;
    int n_regions;          /* MSR regions of the step (0 unless SARDFQ with MSR) */
    const int32_t *regions; /* n_regions x 6: image, quadrant, y0, x0, h, w;
                               images in ascending order, each box inside
                               its image */
    float *grad;            /* out, may be NULL: the pixel gradient before
                               Adam, n_images x C x H x W */
} sfq_generator_replay;

/* Set the state and run one step with r's draws. On failure (invalid r:
 * SARDFQ_E_INVALID_ARG) the state may already be overwritten. */
sardfq_status sfq_generator_replay_step(sardfq_generator *g, const sfq_generator_replay *r,
                                        sardfq_synth_report *report);

#endif
