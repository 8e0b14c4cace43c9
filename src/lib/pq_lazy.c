/* libpq through dlopen on first use: see pq_lazy.h for why. */
#include "pq_lazy.h"

#include <dlfcn.h>
#include <stdio.h>

static rb_pq api;
static int loaded;

#define SYM(field, name)                                                                           \
    do {                                                                                           \
        *(void **)(&api.field) = dlsym(lib, name);                                                 \
        if (!api.field) {                                                                          \
            snprintf(err, errlen, "libpq has no %s (libpq 14 or newer is needed)", name);          \
            return NULL;                                                                           \
        }                                                                                          \
    } while (0)

const rb_pq *rb_pq_get(char *err, size_t errlen)
{
    if (loaded)
        return &api;
    void *lib = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, errlen, "cannot load libpq (apt-get install libpq5): %s", dlerror());
        return NULL;
    }
    SYM(connectStart, "PQconnectStart");
    SYM(connectPoll, "PQconnectPoll");
    SYM(status, "PQstatus");
    SYM(errorMessage, "PQerrorMessage");
    SYM(socket, "PQsocket");
    SYM(finish, "PQfinish");
    SYM(setnonblocking, "PQsetnonblocking");
    SYM(sendQuery, "PQsendQuery");
    SYM(sendQueryParams, "PQsendQueryParams");
    SYM(consumeInput, "PQconsumeInput");
    SYM(isBusy, "PQisBusy");
    SYM(getResult, "PQgetResult");
    SYM(flush, "PQflush");
    SYM(resultStatus, "PQresultStatus");
    SYM(resultErrorField, "PQresultErrorField");
    SYM(resultErrorMessage, "PQresultErrorMessage");
    SYM(ntuples, "PQntuples");
    SYM(nfields, "PQnfields");
    SYM(fname, "PQfname");
    SYM(ftype, "PQftype");
    SYM(getvalue, "PQgetvalue");
    SYM(getlength, "PQgetlength");
    SYM(getisnull, "PQgetisnull");
    SYM(cmdTuples, "PQcmdTuples");
    SYM(clear, "PQclear");
    SYM(enterPipelineMode, "PQenterPipelineMode");
    SYM(exitPipelineMode, "PQexitPipelineMode");
    SYM(pipelineSync, "PQpipelineSync");
    SYM(transactionStatus, "PQtransactionStatus");
    SYM(conninfoParse, "PQconninfoParse");
    SYM(conninfoFree, "PQconninfoFree");
    SYM(freemem, "PQfreemem");
    SYM(getCancel, "PQgetCancel");
    SYM(cancel, "PQcancel");
    SYM(freeCancel, "PQfreeCancel");
    SYM(setNoticeProcessor, "PQsetNoticeProcessor");
    SYM(connectdbParams, "PQconnectdbParams");
    SYM(exec, "PQexec");
    SYM(execParams, "PQexecParams");
    SYM(prepare, "PQprepare");
    SYM(execPrepared, "PQexecPrepared");
    SYM(clientEncoding, "PQclientEncoding");
    loaded = 1; /* the library stays mapped for the life of the process */
    return &api;
}
