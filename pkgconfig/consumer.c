/* consumer.c - an outside program built only from what `pkg-config --cflags
 * --libs sardfq` gives, against an installed copy of the library (see
 * install_test.sh). Exits non-zero if the header it compiled against and the
 * library it runs with disagree. */
#include <sardfq.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    const char *version = sardfq_version_string();
    const char *ok = sardfq_status_string(SARDFQ_OK);
    const char *unknown = sardfq_status_string(-1000);
    int failed = 0;

    if (sardfq_version_number() != SARDFQ_VERSION_NUMBER) {
        fprintf(stderr, "consumer: sardfq_version_number() = %lu, header says %d\n",
                (unsigned long)sardfq_version_number(), SARDFQ_VERSION_NUMBER);
        failed = 1;
    }
    if (version == NULL || strcmp(version, SARDFQ_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: sardfq_version_string() = %s, header says %s\n",
                version ? version : "(null)", SARDFQ_VERSION_STRING);
        failed = 1;
    }
    if (ok == NULL || ok[0] == '\0') {
        fprintf(stderr, "consumer: sardfq_status_string(SARDFQ_OK) is empty\n");
        failed = 1;
    }
    if (unknown == NULL || unknown[0] == '\0') {
        fprintf(stderr, "consumer: sardfq_status_string(-1000) is empty\n");
        failed = 1;
    }
    if (sardfq_last_error() == NULL) {
        fprintf(stderr, "consumer: sardfq_last_error() is NULL\n");
        failed = 1;
    }
    if (!failed)
        printf("consumer: libsardfq %s (%s)\n", version, ok);
    return failed;
}
