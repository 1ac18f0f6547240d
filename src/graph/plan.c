/* plan.c - plan storage, the builders' helpers and the window geometry
 * (see plan.h). Knows no model: graph/ uses core/ only. */
#include "plan.h"

#include <string.h>

void sfq_plan_free(sfq_plan *p)
{
    if (!p)
        return;
    sfq_free(p->vars);
    sfq_free(p->steps);
    sfq_free(p->block_first);
    sfq_free(p->block_resid);
    sfq_free(p);
}

void sfq_plan_relocate(sfq_plan *p, const float *(*map)(const void *ctx, const float *view), const void *ctx)
{
    for (int i = 0; i < p->nsteps; i++) {
        sfq_step *st = &p->steps[i];
        const float **views[] = {&st->w, &st->b, &st->w2, &st->b2, &st->cls, &st->dist, &st->pos, &st->bias_table};
        for (size_t k = 0; k < sizeof views / sizeof views[0]; k++)
            if (*views[k])
                *views[k] = map(ctx, *views[k]);
    }
}

/* Grow an array of `size`-byte elements to hold one more. */
static int grow(void **a, int n, int *cap, size_t size)
{
    if (n < *cap)
        return 1;
    const int nc = *cap ? 2 * *cap : 32;
    void *b = sfq_alloc_array((size_t)nc, size);
    if (!b)
        return 0;
    if (n)
        memcpy(b, *a, size * (size_t)n);
    sfq_free(*a);
    *a = b;
    *cap = nc;
    return 1;
}

int sfq_plan_var(sfq_plan *p, const char *name, int rows, int cols, int slot)
{
    if (!grow((void **)&p->vars, p->nvars, &p->cap_vars, sizeof *p->vars)) {
        p->oom = 1;
        return 0;
    }
    sfq_var *v = &p->vars[p->nvars];
    v->rows = rows;
    v->cols = cols;
    v->slot = slot;
    v->name = name;
    if (slot >= p->nslots)
        p->nslots = slot + 1;
    return p->nvars++;
}

sfq_step *sfq_plan_step(sfq_plan *p, int op, int in, int out, int block)
{
    sfq_step *s = &p->dummy;
    if (grow((void **)&p->steps, p->nsteps, &p->cap_steps, sizeof *p->steps))
        s = &p->steps[p->nsteps++];
    else
        p->oom = 1;
    memset(s, 0, sizeof *s);
    s->op = op;
    s->in = in;
    s->in2 = -1;
    s->out = out;
    s->block = block;
    s->lin = -1;
    for (int i = 0; i < SFQ_PT_COUNT; i++)
        s->pt[i] = -1;
    return s;
}

int sfq_window_pos(const sfq_window *g, int w, int i)
{
    const int nww = g->gw / g->ww;
    const int wy = w / nww, wx = w % nww, iy = i / g->ww, ix = i % g->ww;
    int y = wy * g->wh + iy, x = wx * g->ww + ix;
    if (g->shifted) {
        y = (y + g->sh) % g->gh;
        x = (x + g->sw) % g->gw;
    }
    return y * g->gw + x;
}

/* Region of a position of the shifted frame along one axis (timm's mask
 * slices [0, n - win), [n - win, n - shift), [n - shift, n)). */
static int region(int p, int n, int win, int shift)
{
    if (!shift)
        return 0;
    return p < n - win ? 0 : p < n - shift ? 1 : 2;
}

void sfq_window_labels(const sfq_window *g, int w, int *lab)
{
    const int nww = g->gw / g->ww, wy = w / nww, wx = w % nww;
    for (int i = 0; i < g->wh * g->ww; i++) {
        const int y = wy * g->wh + i / g->ww, x = wx * g->ww + i % g->ww;
        lab[i] = region(y, g->gh, g->wh, g->sh) * 3 + region(x, g->gw, g->ww, g->sw);
    }
}

int sfq_attention_windows(const sfq_step *st)
{
    if (st->readback == SFQ_READ_CLS_ROW)
        return 1;
    return (st->win.gh / st->win.wh) * (st->win.gw / st->win.ww);
}
