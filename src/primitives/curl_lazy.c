/* libcurl through dlopen on first use: see curl_lazy.h for why. */
#include "curl_lazy.h"

#include <dlfcn.h>
#include <stdio.h>

static rb_curl api;
static void *lib;
static CURLcode (*global_init)(long);
static void (*global_cleanup)(void);
static int loaded;

#define SYM(field, name)                                                                           \
    do {                                                                                           \
        *(void **)(&api.field) = dlsym(lib, name);                                                 \
        if (!api.field) {                                                                          \
            snprintf(err, errlen, "libcurl has no %s", name);                                      \
            return NULL;                                                                           \
        }                                                                                          \
    } while (0)

const rb_curl *rb_curl_get(char *err, size_t errlen)
{
    if (loaded)
        return &api;
    lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, errlen, "cannot load libcurl (apt-get install libcurl4): %s", dlerror());
        return NULL;
    }
    *(void **)(&global_init) = dlsym(lib, "curl_global_init");
    *(void **)(&global_cleanup) = dlsym(lib, "curl_global_cleanup");
    if (!global_init || !global_cleanup) {
        snprintf(err, errlen, "libcurl has no curl_global_init");
        return NULL;
    }
    SYM(easy_init, "curl_easy_init");
    SYM(easy_setopt, "curl_easy_setopt");
    SYM(easy_getinfo, "curl_easy_getinfo");
    SYM(easy_cleanup, "curl_easy_cleanup");
    SYM(easy_strerror, "curl_easy_strerror");
    SYM(easy_escape, "curl_easy_escape");
    SYM(free, "curl_free");
    SYM(multi_init, "curl_multi_init");
    SYM(multi_add_handle, "curl_multi_add_handle");
    SYM(multi_remove_handle, "curl_multi_remove_handle");
    SYM(multi_perform, "curl_multi_perform");
    SYM(multi_poll, "curl_multi_poll");
    SYM(multi_info_read, "curl_multi_info_read");
    SYM(multi_setopt, "curl_multi_setopt");
    SYM(multi_cleanup, "curl_multi_cleanup");
    SYM(slist_append, "curl_slist_append");
    SYM(slist_free_all, "curl_slist_free_all");
    CURLcode rc = global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init failed (%d)", (int)rc);
        return NULL;
    }
    loaded = 1;
    return &api;
}

void rb_curl_unload(void)
{
    if (loaded)
        global_cleanup();
    loaded = 0;
    /* the library stays mapped: its atexit handlers may still run */
}
