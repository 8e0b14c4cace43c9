/*
 * libpq, loaded on first use, for the same reason as libcurl (curl_lazy.h):
 * linking it pulls in two dozen shared libraries (TLS, Kerberos, LDAP) that
 * every start would pay for, while most runbooks never touch PostgreSQL.
 */
#ifndef RUNBOOK_PQ_LAZY_H
#define RUNBOOK_PQ_LAZY_H

#include <libpq-fe.h>
#include <stddef.h>

typedef struct rb_pq {
    PGconn *(*connectStart)(const char *);
    PostgresPollingStatusType (*connectPoll)(PGconn *);
    ConnStatusType (*status)(const PGconn *);
    char *(*errorMessage)(const PGconn *);
    int (*socket)(const PGconn *);
    void (*finish)(PGconn *);
    int (*setnonblocking)(PGconn *, int);
    int (*sendQuery)(PGconn *, const char *);
    int (*sendQueryParams)(PGconn *, const char *, int, const Oid *, const char *const *,
                           const int *, const int *, int);
    int (*consumeInput)(PGconn *);
    int (*isBusy)(PGconn *);
    PGresult *(*getResult)(PGconn *);
    int (*flush)(PGconn *);
    ExecStatusType (*resultStatus)(const PGresult *);
    char *(*resultErrorField)(const PGresult *, int);
    char *(*resultErrorMessage)(const PGresult *);
    int (*ntuples)(const PGresult *);
    int (*nfields)(const PGresult *);
    char *(*fname)(const PGresult *, int);
    Oid (*ftype)(const PGresult *, int);
    char *(*getvalue)(const PGresult *, int, int);
    int (*getlength)(const PGresult *, int, int);
    int (*getisnull)(const PGresult *, int, int);
    char *(*cmdTuples)(PGresult *);
    void (*clear)(PGresult *);
    int (*enterPipelineMode)(PGconn *);
    int (*exitPipelineMode)(PGconn *);
    int (*pipelineSync)(PGconn *);
    PGTransactionStatusType (*transactionStatus)(const PGconn *);
    PQconninfoOption *(*conninfoParse)(const char *, char **);
    void (*conninfoFree)(PQconninfoOption *);
    void (*freemem)(void *);
    PGcancel *(*getCancel)(PGconn *);
    int (*cancel)(PGcancel *, char *, int);
    void (*freeCancel)(PGcancel *);
    PQnoticeProcessor (*setNoticeProcessor)(PGconn *, PQnoticeProcessor, void *);
    /* the blocking calls, for the audit log (one statement per record) */
    PGconn *(*connectdbParams)(const char *const *, const char *const *, int);
    PGresult *(*exec)(PGconn *, const char *);
    PGresult *(*execParams)(PGconn *, const char *, int, const Oid *, const char *const *,
                            const int *, const int *, int);
    PGresult *(*prepare)(PGconn *, const char *, const char *, int, const Oid *);
    PGresult *(*execPrepared)(PGconn *, const char *, int, const char *const *, const int *,
                              const int *, int);
    int (*clientEncoding)(const PGconn *);
} rb_pq;

/* The loaded library, or NULL with the reason in err. */
const rb_pq *rb_pq_get(char *err, size_t errlen);

#endif
