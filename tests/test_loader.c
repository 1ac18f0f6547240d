/* test_loader.c - sardfq_model_load/_memory on malformed input: every
 * truncation point of the header and a sample beyond it, random byte flips,
 * and one hand-made file per validation rule; the name table's save -> load
 * symmetry on every naming. CI also runs this suite under
 * AddressSanitizer + UBSan (tests/run.sh). */
#include "names.h"
#include "rng.h"
#include "safetensors.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t *fixture(const char *name, size_t *len)
{
    uint8_t *b = tu_read_file(tu_data(name), len);
    ck_assert_msg(b != NULL, "cannot read %s", name);
    return b;
}

/* Load from memory; on success run one forward on zeros (it must not
 * crash), free, and return the status. On failure the message must be
 * non-empty and *out untouched. */
static sardfq_status try_load(const uint8_t *buf, size_t len, int heads)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.num_heads = heads;
    p.n_threads = 1;
    sardfq_model *sentinel = (sardfq_model *)(uintptr_t)0x1234, *m = sentinel;
    sardfq_status s = sardfq_model_load_memory(buf, len, &p, &m);
    if (s != SARDFQ_OK) {
        ck_assert_ptr_eq(m, sentinel);
        ck_assert_msg(sardfq_last_error()[0] != '\0', "status %d without a message", s);
        return s;
    }
    sardfq_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sardfq_model_get_info(m, &info), SARDFQ_OK);
    float *x = calloc((size_t)info.in_chans * info.img_h * info.img_w, sizeof(float));
    float *logits = calloc((size_t)info.num_classes, sizeof(float));
    ck_assert_int_eq(sardfq_model_forward(m, x, 1, logits), SARDFQ_OK);
    free(x);
    free(logits);
    sardfq_model_free(m);
    return s;
}

START_TEST(every_header_truncation_fails_cleanly)
{
    size_t len;
    uint8_t *b = fixture("vit_p16_rgb.model.safetensors", &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | b[i];
    ck_assert(8 + hlen < len);
    for (size_t cut = 0; cut < 8 + hlen; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size so ASan sees overreads */
        memcpy(copy, b, cut);
        ck_assert_int_ne(try_load(copy, cut, 0), SARDFQ_OK);
        free(copy);
    }
    /* a sample of cuts inside the data */
    sfq_rng r;
    sfq_rng_seed(&r, 7);
    for (int k = 0; k < 200; k++) {
        size_t cut = 8 + hlen + (size_t)(sfq_rng_next(&r) % (len - 8 - hlen));
        uint8_t *copy = malloc(cut);
        memcpy(copy, b, cut);
        ck_assert_int_eq(try_load(copy, cut, 0), SARDFQ_E_FORMAT);
        free(copy);
    }
    ck_assert_int_eq(try_load(b, len, 0), SARDFQ_OK);
    free(b);
}
END_TEST

START_TEST(random_byte_flips_never_crash)
{
    size_t len;
    uint8_t *b = fixture("deit_distilled.model.safetensors", &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | b[i];
    sfq_rng r;
    sfq_rng_seed(&r, 11);
    int ok = 0, failed = 0;
    uint8_t *copy = malloc(len);
    for (int k = 0; k < 3000; k++) {
        memcpy(copy, b, len);
        int flips = 1 + (int)(sfq_rng_next(&r) % 3);
        for (int f = 0; f < flips; f++) {
            /* three quarters of the flips land in the length or the header */
            size_t pos = sfq_rng_next(&r) % 4 ? (size_t)(sfq_rng_next(&r) % (8 + hlen))
                                              : (size_t)(sfq_rng_next(&r) % len);
            copy[pos] ^= (uint8_t)(1u << (sfq_rng_next(&r) % 8));
        }
        if (try_load(copy, len, 0) == SARDFQ_OK)
            ok++;
        else
            failed++;
    }
    printf("byte flips: %d loaded, %d refused\n", ok, failed);
    ck_assert_int_gt(failed, 0);
    free(copy);
    free(b);
}
END_TEST

/* ---- one file per rule ------------------------------------------------- */

/* The tensors of a fixture as F32, to rewrite with one change. */
typedef struct {
    sfq_st_out_tensor t[128];
    float *data[128];
    char *names[128];
    int n;
    const char *mk[32], *mv[32];
    int nm;
    uint8_t *buf;
    sfq_st_file st;
} tensor_set;

static void set_load(tensor_set *s, const char *name)
{
    size_t len;
    memset(s, 0, sizeof *s);
    s->buf = fixture(name, &len);
    ck_assert_int_eq(sfq_st_parse(s->buf, len, &s->st), SARDFQ_OK);
    ck_assert(s->st.n_tensors <= 128);
    for (int i = 0; i < s->st.n_tensors; i++) {
        const sfq_st_tensor *t = &s->st.tensors[i];
        s->data[i] = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
        ck_assert_int_eq(sfq_st_read_f32(&s->st, t, s->data[i]), SARDFQ_OK);
        s->names[i] = strdup(t->name);
        s->t[i].name = s->names[i];
        s->t[i].dtype = SFQ_DT_F32;
        s->t[i].ndim = t->ndim;
        memcpy(s->t[i].shape, t->shape, sizeof t->shape);
        s->t[i].data = s->data[i];
    }
    s->n = s->st.n_tensors;
    for (int i = 0; i < s->st.n_meta && i < 32; i++) {
        s->mk[i] = s->st.meta_keys[i];
        s->mv[i] = s->st.meta_vals[i];
    }
    s->nm = s->st.n_meta < 32 ? s->st.n_meta : 32;
}

static int set_find(tensor_set *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name))
            return i;
    ck_abort_msg("no tensor %s", name);
    return -1;
}

static void set_remove(tensor_set *s, const char *name)
{
    int i = set_find(s, name);
    s->t[i] = s->t[--s->n];
}

static void set_meta(tensor_set *s, const char *key, const char *val)
{
    for (int i = 0; i < s->nm; i++)
        if (!strcmp(s->mk[i], key)) {
            s->mv[i] = val;
            return;
        }
    s->mk[s->nm] = key;
    s->mv[s->nm++] = val;
}

/* Write, load, expect status and a message containing `needle`. */
static void set_expect(tensor_set *s, int heads, sardfq_status want, const char *needle)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/sardfq-test-loader-%d.safetensors", (int)getpid());
    ck_assert_int_eq(sfq_st_write(path, s->t, s->n, s->mk, s->mv, s->nm), SARDFQ_OK);
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.num_heads = heads;
    sardfq_model *m = NULL;
    sardfq_status got = sardfq_model_load(path, &p, &m);
    ck_assert_msg(got == want, "expected %d got %d (%s)", want, got, sardfq_last_error());
    if (want != SARDFQ_OK) {
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(sardfq_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                      sardfq_last_error(), needle);
    }
    sardfq_model_free(m);
    unlink(path);
}

static void set_free(tensor_set *s)
{
    for (int i = 0; i < s->st.n_tensors; i++) {
        free(s->data[i]);
        free(s->names[i]);
    }
    sfq_st_release(&s->st);
    free(s->buf);
}

START_TEST(rewritten_fixture_loads)
{
    tensor_set s;
    set_load(&s, "vit_p16_rgb.model.safetensors");
    set_expect(&s, 0, SARDFQ_OK, NULL);
    set_free(&s);
}
END_TEST

START_TEST(missing_tensor)
{
    tensor_set s;
    set_load(&s, "vit_p16_rgb.model.safetensors");
    set_remove(&s, "blocks.1.mlp.fc2.bias");
    set_expect(&s, 0, SARDFQ_E_FORMAT, "blocks.1.mlp.fc2.bias");
    set_free(&s);
}
END_TEST

START_TEST(missing_head)
{
    tensor_set s;
    set_load(&s, "tv_vit.model.safetensors");
    set_remove(&s, "heads.head.weight");
    set_expect(&s, 0, SARDFQ_E_FORMAT, "heads.head.weight");
    set_free(&s);
}
END_TEST

START_TEST(inconsistent_shape)
{
    tensor_set s;
    set_load(&s, "vit_p16_rgb.model.safetensors");
    int i = set_find(&s, "blocks.0.attn.proj.weight");
    s.t[i].ndim = 2;
    s.t[i].shape[0] = 32; /* 32 x 128 instead of 64 x 64: same bytes */
    s.t[i].shape[1] = 128;
    set_expect(&s, 0, SARDFQ_E_SHAPE, "blocks.0.attn.proj.weight");
    set_free(&s);
}
END_TEST

START_TEST(unknown_tensor_refused)
{
    tensor_set s;
    set_load(&s, "vit_p16_rgb.model.safetensors");
    int i = set_find(&s, "norm.bias");
    s.t[s.n] = s.t[i];
    s.t[s.n++].name = "blocks.0.ls1.gamma";
    set_expect(&s, 0, SARDFQ_E_UNSUPPORTED, "blocks.0.ls1.gamma");
    set_free(&s);
}
END_TEST

START_TEST(metadata_contradicts_shapes)
{
    tensor_set s;
    set_load(&s, "vit_p16_rgb.model.safetensors");
    set_meta(&s, "embed_dim", "65");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "embed_dim");
    set_meta(&s, "embed_dim", "64");
    set_meta(&s, "img_size", "32,32");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "img_size");
    set_meta(&s, "img_size", "32,40");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "multiple of the patch");
    set_meta(&s, "img_size", "32,48");
    set_meta(&s, "depth", "3");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "depth");
    set_meta(&s, "depth", "two");
    set_expect(&s, 0, SARDFQ_E_FORMAT, "depth");
    set_meta(&s, "depth", "2");
    set_meta(&s, "num_heads", "5");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "num_heads");
    set_meta(&s, "num_heads", "4");
    set_meta(&s, "mean", "0.5,0.5");
    set_expect(&s, 0, SARDFQ_E_FORMAT, "mean");
    set_meta(&s, "mean", "0.5");
    set_meta(&s, "std", "0");
    set_expect(&s, 0, SARDFQ_E_FORMAT, "std");
    set_meta(&s, "std", "0.5");
    set_meta(&s, "arch", "deit_distilled");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "distillation");
    set_meta(&s, "arch", "swin_tiny");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "ViT's");
    set_meta(&s, "arch", "vit");
    set_meta(&s, "mlp_ratio", "3");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "mlp_ratio");
    set_meta(&s, "mlp_ratio", "4");
    set_meta(&s, "crop_pct", "7");
    set_expect(&s, 0, SARDFQ_E_FORMAT, "crop_pct");
    set_meta(&s, "crop_pct", "0.875");
    set_expect(&s, 0, SARDFQ_OK, NULL);
    set_free(&s);
}
END_TEST

START_TEST(unsupported_dtype_and_channels)
{
    tensor_set s;
    set_load(&s, "vit_p16_rgb.model.safetensors");
    int i = set_find(&s, "head.bias");
    s.t[i].dtype = SFQ_DT_I32; /* same byte count */
    set_expect(&s, 0, SARDFQ_E_UNSUPPORTED, "I32");
    s.t[i].dtype = SFQ_DT_F32;
    i = set_find(&s, "patch_embed.proj.weight");
    s.t[i].shape[0] = 64 * 3 / 2; /* [96, 2, 16, 16]: 2 channels */
    s.t[i].shape[1] = 2;
    set_expect(&s, 0, SARDFQ_E_UNSUPPORTED, "channels");
    set_free(&s);
}
END_TEST

START_TEST(non_square_grid_needs_metadata)
{
    tensor_set s;
    set_load(&s, "vit_p16_rgb.model.safetensors");
    s.nm = 0; /* drop all metadata: 6 patches is not a square */
    set_expect(&s, 4, SARDFQ_E_FORMAT, "img_size");
    set_free(&s);
}
END_TEST

START_TEST(not_a_vit)
{
    tensor_set s;
    set_load(&s, "vit_p16_rgb.model.safetensors");
    int i = set_find(&s, "patch_embed.proj.weight");
    s.t[i].name = "layers.0.blocks.0.norm1.weight"; /* looks like a Swin */
    set_expect(&s, 0, SARDFQ_E_SHAPE, "Swin Transformer's");
    set_meta(&s, "arch", "swin");
    set_expect(&s, 0, SARDFQ_E_FORMAT, "Swin checkpoint without");
    s.t[i].name = "something.else";
    set_expect(&s, 0, SARDFQ_E_FORMAT, "not a ViT");
    set_free(&s);
}
END_TEST

/* Swin: the configuration rules, on swin_a (2 stages of 2 blocks, 56 px,
 * window 7) */
START_TEST(swin_rules)
{
    tensor_set s;
    set_load(&s, "swin_a.timm.model.safetensors");
    set_expect(&s, 0, SARDFQ_OK, NULL);
    set_expect(&s, 3, SARDFQ_E_INVALID_ARG, "num_heads");
    set_meta(&s, "depths", "2,3");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "depths");
    set_meta(&s, "depths", "2,x");
    set_expect(&s, 0, SARDFQ_E_FORMAT, "depths");
    set_meta(&s, "depths", "2,2");
    set_meta(&s, "num_heads", "3,3");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "num_heads");
    set_meta(&s, "num_heads", "3,6");
    set_meta(&s, "img_size", "60"); /* 15x15 grid: not a multiple of 7 */
    set_expect(&s, 0, SARDFQ_E_SHAPE, "windows");
    set_meta(&s, "img_size", "84"); /* 21x21: three windows, but odd for merging */
    set_expect(&s, 0, SARDFQ_E_SHAPE, "odd");
    set_meta(&s, "img_size", "112,56"); /* any compatible size */
    set_expect(&s, 0, SARDFQ_OK, NULL);
    set_meta(&s, "img_size", "56");
    set_meta(&s, "arch", "swinv2_tiny");
    set_expect(&s, 0, SARDFQ_E_UNSUPPORTED, "V2");
    set_meta(&s, "arch", "vit_base");
    set_expect(&s, 0, SARDFQ_E_SHAPE, "Swin");
    set_meta(&s, "arch", "swin");
    int i = set_find(&s, "layers.1.blocks.0.attn.relative_position_bias_table");
    s.t[i].shape[0] = 25; /* a 3x3 window's table on a 7x7 grid */
    set_expect(&s, 0, SARDFQ_E_SHAPE, "relative_position_bias_table");
    s.t[i].shape[0] = 169;
    i = set_find(&s, "layers.1.downsample.reduction.weight");
    s.t[i].name = "absolute_pos_embed";
    set_expect(&s, 0, SARDFQ_E_FORMAT, "layers.1.downsample.reduction.weight");
    s.t[i].name = "layers.1.downsample.reduction.weight";
    set_remove(&s, "layers.0.blocks.1.mlp.fc2.bias");
    set_expect(&s, 0, SARDFQ_E_FORMAT, "layers.0.blocks.1.mlp.fc2.bias");
    set_free(&s);
    /* torchvision names, a 16 px image: 4x4 grid < window 7, which
     * torchvision would pad (timm clips) */
    set_load(&s, "swin_a.tv.model.safetensors");
    set_expect(&s, 0, SARDFQ_OK, NULL);
    set_meta(&s, "img_size", "16");
    set_expect(&s, 0, SARDFQ_E_UNSUPPORTED, "pads");
    set_free(&s);
}
END_TEST

START_TEST(not_safetensors_at_all)
{
    const char *junk[] = {"", "hello", "\xff\xff\xff\xff\xff\xff\xff\xff{}",
                          "\x02\x00\x00\x00\x00\x00\x00\x00[]", "\x02\x00\x00\x00\x00\x00\x00\x00{}"};
    size_t lens[] = {0, 5, 10, 10, 10};
    for (int i = 0; i < 5; i++)
        ck_assert_int_ne(try_load((const uint8_t *)junk[i], lens[i], 0), SARDFQ_OK);
    /* "{}" is valid safetensors with no tensors: not a ViT */
    ck_assert_int_eq(try_load((const uint8_t *)junk[4], lens[4], 0), SARDFQ_E_FORMAT);
}
END_TEST

/* The name table (src/model/names.c), save -> load: every tensor of the
 * model is saved under its row's timm name with its view's shape, the saved
 * file holds nothing else, and loading it back binds that name to the same
 * view with the same values. The fixture itself holds exactly the walk's
 * tensors under its own naming (Swin: plus the buffers it may store). */
typedef struct {
    sfq_tensor *t;
    int n;
} tensor_list;

static int collect(void *ctx, const sfq_tensor *t)
{
    tensor_list *l = ctx;
    ck_assert_int_lt(l->n, 4096);
    l->t[l->n++] = *t;
    return 0;
}

static void parse_file(const char *path, uint8_t **buf, sfq_st_file *st)
{
    size_t len;
    *buf = tu_read_file(path, &len);
    ck_assert_ptr_nonnull(*buf);
    ck_assert_int_eq(sfq_st_parse(*buf, len, st), SARDFQ_OK);
}

static void check_name_symmetry(const char *fixture_name, int flavour)
{
    sardfq_model_params p;
    sardfq_model_default_params(&p);
    p.n_threads = 1;
    sardfq_model *m, *back;
    ck_assert_int_eq(sardfq_model_load(tu_data(fixture_name), &p, &m), SARDFQ_OK);
    char *dir = tu_make_tmpdir("sardfq_names");
    const char *path = tu_join(dir, "saved.safetensors");
    ck_assert_int_eq(sardfq_model_save(m, path), SARDFQ_OK);
    ck_assert_int_eq(sardfq_model_load(path, &p, &back), SARDFQ_OK);
    sardfq_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sardfq_model_get_info(m, &info), SARDFQ_OK);
    uint8_t *saved_buf, *orig_buf;
    sfq_st_file saved, orig;
    parse_file(path, &saved_buf, &saved);
    parse_file(tu_data(fixture_name), &orig_buf, &orig);
    tensor_list a = {calloc(4096, sizeof(sfq_tensor)), 0}, b = {calloc(4096, sizeof(sfq_tensor)), 0};
    ck_assert_int_eq(sfq_tensors_walk(m, collect, &a), 0);
    ck_assert_int_eq(sfq_tensors_walk(back, collect, &b), 0);
    ck_assert_int_eq(a.n, b.n);
    ck_assert_int_eq(saved.n_tensors, a.n);
    int in_orig = 0;
    for (int i = 0; i < a.n; i++) {
        const sfq_tensor *ta = &a.t[i], *tb = &b.t[i];
        char name[200];
        ck_assert(ta->id == tb->id && ta->stage == tb->stage && ta->block == tb->block);
        ck_assert(sfq_tensor_name(info.arch, ta->id, SFQ_NAMES_TIMM, ta->stage, ta->block, name, sizeof name));
        const sfq_st_tensor *t = sfq_st_find(&saved, name);
        ck_assert_msg(t != NULL, "%s: '%s' not saved", fixture_name, name);
        ck_assert_int_eq(t->ndim, ta->ndim);
        size_t numel = 1;
        for (int d = 0; d < ta->ndim; d++) {
            ck_assert_int_eq(t->shape[d], ta->shape[d]);
            numel *= (size_t)ta->shape[d];
        }
        ck_assert_msg(memcmp(ta->data, tb->data, numel * sizeof(float)) == 0, "%s: '%s' differs after save + load",
                      fixture_name, name);
        ck_assert(sfq_tensor_name(info.arch, ta->id, flavour, ta->stage, ta->block, name, sizeof name));
        const int found = sfq_st_find(&orig, name) != NULL;
        ck_assert_msg(found || (ta->flags & SFQ_NAME_OPTIONAL), "%s: no '%s'", fixture_name, name);
        in_orig += found;
    }
    for (int i = 0; i < orig.n_tensors; i++)
        in_orig += info.arch == SARDFQ_ARCH_SWIN && (strstr(orig.tensors[i].name, ".relative_position_index") ||
                                                     strstr(orig.tensors[i].name, ".attn_mask"));
    ck_assert_int_eq(in_orig, orig.n_tensors);
    free(a.t);
    free(b.t);
    sfq_st_release(&saved);
    sfq_st_release(&orig);
    free(saved_buf);
    free(orig_buf);
    sardfq_model_free(back);
    sardfq_model_free(m);
    tu_rm_rf(dir);
}

START_TEST(name_table_save_load_symmetry)
{
    check_name_symmetry("vit_p16_rgb.model.safetensors", SFQ_NAMES_TIMM);
    check_name_symmetry("deit_distilled.model.safetensors", SFQ_NAMES_TIMM);
    check_name_symmetry("tv_vit.model.safetensors", SFQ_NAMES_TV);
    check_name_symmetry("tv_vit_legacy.model.safetensors", SFQ_NAMES_TV_OLD);
    check_name_symmetry("swin_a.timm.model.safetensors", SFQ_NAMES_TIMM);
    check_name_symmetry("swin_a.timm_old.model.safetensors", SFQ_NAMES_TIMM_OLD);
    check_name_symmetry("swin_a.tv.model.safetensors", SFQ_NAMES_TV);
    check_name_symmetry("swin_c.clipped.model.safetensors", SFQ_NAMES_TIMM);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("mutations");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, every_header_truncation_fails_cleanly);
    tcase_add_test(tc, random_byte_flips_never_crash);
    suite_add_tcase(s, tc);
    tc = tcase_create("rules");
    tcase_add_test(tc, rewritten_fixture_loads);
    tcase_add_test(tc, missing_tensor);
    tcase_add_test(tc, missing_head);
    tcase_add_test(tc, inconsistent_shape);
    tcase_add_test(tc, unknown_tensor_refused);
    tcase_add_test(tc, metadata_contradicts_shapes);
    tcase_add_test(tc, unsupported_dtype_and_channels);
    tcase_add_test(tc, non_square_grid_needs_metadata);
    tcase_add_test(tc, not_a_vit);
    tcase_add_test(tc, swin_rules);
    tcase_add_test(tc, not_safetensors_at_all);
    tcase_add_test(tc, name_table_save_load_symmetry);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
