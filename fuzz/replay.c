/*
 * The fuzz harnesses without libFuzzer: `fuzz_replay_TARGET FILE|DIR...`
 * feeds each file (a directory's files, in name order) to the harness once.
 * The normal build (gcc, and CI's ASan+UBSan stage) runs the committed
 * regression inputs and seed corpora through it (ctest fuzz_regressions/TARGET),
 * so a bug the fuzzers once found stays fixed without clang.
 */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int replayed;

static void replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                fprintf(stderr, "%s: out of memory\n", path);
                exit(1);
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    /* an exact-size copy, so ASan sees a read past the input's end */
    uint8_t *input = malloc(len ? len : 1);
    if (!input) {
        fprintf(stderr, "%s: out of memory\n", path);
        exit(1);
    }
    memcpy(input, buf, len);
    free(buf);
    fprintf(stderr, "fuzz replay: %s\n", path);
    LLVMFuzzerTestOneInput(input, len);
    free(input);
    replayed++;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void replay(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        exit(1);
    }
    if (!S_ISDIR(st.st_mode)) {
        replay_file(path);
        return;
    }
    struct dirent **names;
    int n = scandir(path, &names, NULL, by_name);
    if (n < 0) {
        perror(path);
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, names[i]->d_name);
            replay(sub);
        }
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        replay(argv[i]);
    printf("%d inputs replayed, no failure\n", replayed);
    return 0;
}
