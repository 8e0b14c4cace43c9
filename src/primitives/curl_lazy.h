/*
 * libcurl, loaded on first use.  Linking it pulls in some thirty shared
 * libraries (TLS, HTTP/2, SSH, LDAP, Kerberos...) and costs about 4 ms at
 * every start, more than a one-step runbook takes; so it is dlopen()ed the
 * first time a runbook makes a transfer, and only then initialised.
 */
#ifndef RUNBOOK_CURL_LAZY_H
#define RUNBOOK_CURL_LAZY_H

#include <curl/curl.h>
#include <stddef.h>

typedef struct rb_curl {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    char *(*easy_escape)(CURL *, const char *, int);
    void (*free)(void *);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd[], unsigned int, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMcode (*multi_cleanup)(CURLM *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} rb_curl;

/* The loaded library, or NULL with the reason in err. */
const rb_curl *rb_curl_get(char *err, size_t errlen);
/* At exit: curl_global_cleanup if it was initialised. */
void rb_curl_unload(void);

#endif
