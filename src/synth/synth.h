/* synth.h - generator internals shared with the tests. */
#ifndef SFQ_SYNTH_H
#define SFQ_SYNTH_H

/* dst = flip(roll(src, (dy, dx))) on an h x w grid: torch.roll semantics
 * (dst[y][x] = src[y - dy][x - dx], indices mod h, w), then a horizontal
 * flip when flip is nonzero. */
void sfq_jitter(const float *src, float *dst, int h, int w, int dy, int dx, int flip);
/* Its adjoint (the inverse permutation), accumulated: dsrc += J^T ddst. */
void sfq_jitter_adjoint(const float *ddst, float *dsrc, int h, int w, int dy, int dx, int flip);

#endif
