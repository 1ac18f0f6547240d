/* status.c - status strings, the thread-local detail message, versions. */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[512];

sardfq_status sfq_fail(sardfq_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

void sfq_clear_error(void) { last_error[0] = '\0'; }

SARDFQ_API const char *sardfq_last_error(void) { return last_error; }

SARDFQ_API const char *sardfq_status_string(sardfq_status s)
{
    switch (s) {
    case SARDFQ_OK: return "success";
    case SARDFQ_E_INVALID_ARG: return "invalid argument";
    case SARDFQ_E_NOMEM: return "out of memory";
    case SARDFQ_E_IO: return "input/output error";
    case SARDFQ_E_FORMAT: return "malformed file or buffer";
    case SARDFQ_E_UNSUPPORTED: return "unsupported feature";
    case SARDFQ_E_CANCELLED: return "cancelled by a callback";
    case SARDFQ_E_SHAPE: return "sizes do not match";
    case SARDFQ_E_STATE: return "call out of order";
    case SARDFQ_E_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

SARDFQ_API const char *sardfq_version_string(void) { return SARDFQ_VERSION_STRING; }

SARDFQ_API uint32_t sardfq_version_number(void) { return SARDFQ_VERSION_NUMBER; }

sardfq_status sfq_read_params(const void *in, void *out, size_t out_size, size_t v1_size, const char *name)
{
    if (!in)
        return SARDFQ_OK;
    uint32_t size;
    memcpy(&size, in, sizeof size);
    if (size < v1_size)
        return sfq_fail(SARDFQ_E_INVALID_ARG,
                        "%s.struct_size %u is too small (fill the struct with its "
                        "*_default_params function first)",
                        name, size);
    const unsigned char *tail = (const unsigned char *)in;
    for (size_t i = out_size; i < size; i++)
        if (tail[i])
            return sfq_fail(SARDFQ_E_UNSUPPORTED,
                            "%s has fields this library version does not know (struct_size %u)", name,
                            size);
    memcpy(out, in, size < out_size ? size : out_size);
    uint32_t own = (uint32_t)out_size;
    memcpy(out, &own, sizeof own);
    return SARDFQ_OK;
}
