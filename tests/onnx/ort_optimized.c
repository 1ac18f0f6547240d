/* ort_optimized.c - ONNX Runtime's optimized graph of a model, for the
 * onnx suite's count of fused integer ops: loads libonnxruntime.so.1 (the
 * one onnxruntime-node ships; its JavaScript binding does not expose the
 * optimized-model path) and creates a CPU session with all graph
 * optimisations (the C API's default) and SetOptimizedModelFilePath.
 *
 *   ort_optimized LIBONNXRUNTIME.so MODEL.onnx OPTIMIZED.onnx
 *
 * ONNX Runtime's C API is a table of function pointers (OrtApi) whose
 * order is fixed across releases (onnxruntime_c_api.h: entries are only
 * appended); the header is not shipped by npm, so the four entries used
 * are called by their index in that table: GetErrorMessage 2, CreateEnv 3,
 * CreateSession 7, CreateSessionOptions 10, SetOptimizedModelFilePath 11.
 * API version 20 = ONNX Runtime 1.20, the version pinned in package.json. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const void *(*get_api)(uint32_t version);
    const char *(*version_string)(void);
} ort_api_base;

typedef void *status;
typedef const char *(*error_message_fn)(const status);
typedef status (*create_env_fn)(int level, const char *id, void **env);
typedef status (*create_session_fn)(const void *env, const char *path, const void *opts, void **session);
typedef status (*create_options_fn)(void **opts);
typedef status (*set_path_fn)(void *opts, const char *path);

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ort_optimized LIBONNXRUNTIME.so MODEL.onnx OPTIMIZED.onnx\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "ort_optimized: %s\n", dlerror());
        return 1;
    }
    const ort_api_base *(*base_fn)(void);
    *(void **)&base_fn = dlsym(lib, "OrtGetApiBase");
    const ort_api_base *base = base_fn ? base_fn() : NULL;
    void *const *api = base ? (void *const *)base->get_api(20) : NULL;
    if (!api) {
        fprintf(stderr, "ort_optimized: %s has no C API version 20\n", argv[1]);
        return 1;
    }
    error_message_fn message;
    create_env_fn create_env;
    create_session_fn create_session;
    create_options_fn create_options;
    set_path_fn set_path;
    *(void **)&message = api[2];
    *(void **)&create_env = api[3];
    *(void **)&create_session = api[7];
    *(void **)&create_options = api[10];
    *(void **)&set_path = api[11];
    void *env = NULL, *opts = NULL, *session = NULL;
    status st;
    if ((st = create_env(3 /* ERROR */, "sardfq", &env)) || (st = create_options(&opts)) ||
        (st = set_path(opts, argv[3])) || (st = create_session(env, argv[2], opts, &session))) {
        fprintf(stderr, "ort_optimized: %s\n", message(st));
        return 1;
    }
    printf("onnxruntime %s: optimized graph of %s in %s\n", base->version_string(), argv[2], argv[3]);
    return 0; /* the process exit releases the session */
}
