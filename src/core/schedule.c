/*
 * `schedule` metadata: parse and validate, the next run, systemd OnCalendar=.
 * See schedule.h for the accepted values.
 */
#include "schedule.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const FIELD[] = {"minute", "hour", "day of month", "month", "day of week"};
static const int LO[] = {0, 0, 1, 1, 0}, HI[] = {59, 23, 31, 12, 7};
static const char *const MONTHS[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                     "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const DAYS[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
static const char *const SD_DAYS[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

/* FNV-1a: the same runbook gets the same time on every machine */
static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* One value of field f: a number, or a month/day name. */
static int value(const char **p, int f, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        int v = 0;
        while (isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (*s++ - '0');
        *out = v;
        *p = s;
        return 0;
    }
    const char *const *names = f == 3 ? MONTHS : f == 4 ? DAYS : NULL;
    int count = f == 3 ? 12 : 7;
    for (int i = 0; names && i < count; i++)
        if (strncasecmp(s, names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = f == 3 ? i + 1 : i;
            *p = s + 3;
            return 0;
        }
    return -1;
}

/* One comma-separated item: *, N, A-B, each optionally /STEP. */
static int item(const char *s, int f, uint64_t *bits, char *err, size_t n)
{
    int lo = LO[f], hi = HI[f], step = 1;
    const char *p = s;
    if (*p == '*') {
        p++;
    } else {
        if (value(&p, f, &lo) != 0)
            goto bad;
        hi = lo;
        if (*p == '-') {
            p++;
            if (value(&p, f, &hi) != 0)
                goto bad;
        } else if (*p == '/') {
            snprintf(err, n, "%s field '%s': write a range before the step (e.g. %d-%d/N)",
                     FIELD[f], s, lo, HI[f]);
            return -1;
        }
    }
    if (*p == '/') {
        p++;
        step = 0;
        while (isdigit((unsigned char)*p) && step < 1000)
            step = step * 10 + (*p++ - '0');
        if (step == 0)
            goto bad;
    }
    if (*p)
        goto bad;
    if (lo < LO[f] || hi > HI[f] || lo > hi) {
        snprintf(err, n, "%s field '%s': out of range %d-%d", FIELD[f], s, LO[f], HI[f]);
        return -1;
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= (uint64_t)1 << (f == 4 && v == 7 ? 0 : v); /* 7 is Sunday too */
    return 0;
bad:
    snprintf(err, n,
             "%s field '%s': expected *, a number, a range A-B, a list A,B or a step */N or "
             "A-B/N%s",
             FIELD[f], s,
             strpbrk(s, "LW#?") ? " (the L, W, # and ? extensions are not standard cron)" : "");
    return -1;
}

static int cron_fields(const char *text, rb_schedule *s, char *err, size_t n)
{
    char buf[160], *save = NULL, *fields[6];
    if (strlen(text) >= sizeof buf) {
        snprintf(err, n, "too long for a cron expression");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", text);
    int k = 0;
    for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        if (k < 6)
            fields[k++] = t;
        else
            k++;
    if (k != 5) {
        snprintf(err, n,
                 "expected hourly, daily, weekly, monthly, \"on demand\" or a cron expression "
                 "of 5 fields (minute hour day-of-month month day-of-week), got %d field%s",
                 k, k == 1 ? "" : "s");
        return -1;
    }
    uint64_t bits[5] = {0};
    for (int f = 0; f < 5; f++) {
        char *isave = NULL;
        for (char *it = strtok_r(fields[f], ",", &isave); it; it = strtok_r(NULL, ",", &isave))
            if (item(it, f, &bits[f], err, n) != 0)
                return -1;
    }
    s->minute = bits[0];
    s->hour = (uint32_t)bits[1];
    s->dom = (uint32_t)bits[2];
    s->month = (uint16_t)bits[3];
    s->dow = (uint8_t)bits[4];
    s->dom_star = fields[2][0] == '*';
    s->dow_star = fields[4][0] == '*';
    return 0;
}

int rb_schedule_parse(const char *text, const char *name, rb_schedule *s, char *err, size_t n)
{
    memset(s, 0, sizeof *s);
    if (!text || !*text) {
        snprintf(err, n, "schedule is empty");
        return -1;
    }
    if (strcasecmp(text, "on demand") == 0 || strcasecmp(text, "manual") == 0)
        return RB_SCHEDULE_NONE;
    /* keywords: a time spread by name over 00:00-05:59, so a library's
     * daily runbooks do not all start at midnight */
    uint32_t h = name_hash(name);
    int minute = (int)(h % 60), hour = (int)(h / 60 % 6);
    static const struct {
        const char *word, *cron;
    } macros[] = {{"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
                  {"@weekly", "0 0 * * 0"},  {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
                  {"@annually", "0 0 1 1 *"}};
    const char *cron = text;
    char expanded[160];
    if (strcmp(text, "hourly") == 0)
        snprintf(expanded, sizeof expanded, "%d * * * *", minute), cron = expanded;
    else if (strcmp(text, "daily") == 0)
        snprintf(expanded, sizeof expanded, "%d %d * * *", minute, hour), cron = expanded;
    else if (strcmp(text, "weekly") == 0)
        snprintf(expanded, sizeof expanded, "%d %d * * 1", minute, hour), cron = expanded;
    else if (strcmp(text, "monthly") == 0)
        snprintf(expanded, sizeof expanded, "%d %d 1 * *", minute, hour), cron = expanded;
    else if (text[0] == '@') {
        cron = NULL;
        for (size_t i = 0; i < sizeof macros / sizeof *macros; i++)
            if (strcmp(text, macros[i].word) == 0)
                cron = macros[i].cron;
        if (!cron) {
            snprintf(err, n,
                     "'%s' is not a schedule (@hourly, @daily, @weekly, @monthly, @yearly; "
                     "@reboot is not a time)",
                     text);
            return -1;
        }
    }
    char why[256];
    if (cron_fields(cron, s, why, sizeof why) != 0) {
        snprintf(err, n, "schedule '%s': %s", text, why);
        return -1;
    }
    /* one space between fields: the form a CronJob and a reader expect */
    char norm[160] = "", copy[160], *save = NULL;
    snprintf(copy, sizeof copy, "%s", cron);
    for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        snprintf(norm + strlen(norm), sizeof norm - strlen(norm), "%s%s", norm[0] ? " " : "", t);
    snprintf(s->cron, sizeof s->cron, "%s", norm);
    /* a reference instant, so validity does not depend on today's date */
    struct tm ref = {.tm_year = 124, .tm_mon = 0, .tm_mday = 1, .tm_isdst = -1};
    if (rb_schedule_next(s, mktime(&ref)) == (time_t)-1) {
        snprintf(err, n, "schedule '%s' never fires (no such day)", text);
        return -1;
    }
    return 0;
}

static int has(uint64_t bits, int v)
{
    return (int)((bits >> v) & 1);
}

static int day_matches(const rb_schedule *s, const struct tm *t)
{
    int dom = has(s->dom, t->tm_mday), dow = has(s->dow, t->tm_wday);
    return s->dom_star || s->dow_star ? dom && dow : dom || dow;
}

/* h:m on the day of `day` in local time, when after `after`: a time a
 * clock set back shows twice runs once, at its first instant (as systemd
 * does); a time in the hour a clock skips does not run. */
static time_t local_at(const struct tm *day, int h, int m, time_t after)
{
    time_t first = (time_t)-1;
    for (int dst = 0; dst <= 1; dst++) {
        struct tm c = *day, back;
        c.tm_hour = h, c.tm_min = m, c.tm_sec = 0, c.tm_isdst = dst;
        time_t t = mktime(&c);
        if (t == (time_t)-1 || !localtime_r(&t, &back))
            continue;
        if (back.tm_hour == h && back.tm_min == m && back.tm_mday == day->tm_mday &&
            (first == (time_t)-1 || t < first))
            first = t;
    }
    return first > after ? first : (time_t)-1;
}

time_t rb_schedule_next(const rb_schedule *s, time_t after)
{
    struct tm day;
    localtime_r(&after, &day);
    day.tm_hour = 12, day.tm_min = day.tm_sec = 0, day.tm_isdst = -1;
    for (int d = 0; d < 366 * 8 + 2; d++) {
        struct tm t = day;
        t.tm_mday += d;
        if (mktime(&t) == (time_t)-1)
            return (time_t)-1;
        if (!has(s->month, t.tm_mon + 1) || !day_matches(s, &t))
            continue;
        for (int h = 0; h < 24; h++)
            for (int m = 0; m < 60 && has(s->hour, h); m++) {
                time_t when = has(s->minute, m) ? local_at(&t, h, m, after) : (time_t)-1;
                if (when != (time_t)-1)
                    return when;
            }
    }
    return (time_t)-1;
}

/* A systemd component: "*", or values and A..B ranges separated by commas. */
static void component(char *out, size_t n, uint64_t bits, int lo, int hi, int full, int names)
{
    if (full) {
        snprintf(out, n, "*");
        return;
    }
    size_t used = 0;
    out[0] = '\0';
    for (int v = lo; v <= hi; v++) {
        if (!has(bits, v))
            continue;
        int end = v;
        while (end + 1 <= hi && has(bits, end + 1))
            end++;
        const char *sep = used ? "," : "";
        if (names && end > v)
            used += (size_t)snprintf(out + used, used < n ? n - used : 0, "%s%s..%s", sep,
                                     SD_DAYS[v], SD_DAYS[end]);
        else if (names)
            used += (size_t)snprintf(out + used, used < n ? n - used : 0, "%s%s", sep, SD_DAYS[v]);
        else if (end >= v + 2)
            used +=
                (size_t)snprintf(out + used, used < n ? n - used : 0, "%s%02d..%02d", sep, v, end);
        else {
            used += (size_t)snprintf(out + used, used < n ? n - used : 0, "%s%02d", sep, v);
            end = v;
        }
        v = end;
    }
}

static int full(uint64_t bits, int lo, int hi)
{
    for (int v = lo; v <= hi; v++)
        if (!has(bits, v))
            return 0;
    return 1;
}

/* One OnCalendar= value: [weekdays] *-MONTHS-DAYS HOURS:MINUTES:00 [tz] */
static int line(char *out, size_t n, const rb_schedule *s, int use_dom, int use_dow, const char *tz)
{
    char dow[64] = "", mon[64], dom[160], hour[128], min[256];
    if (use_dow && !full(s->dow, 0, 6)) {
        component(dow, sizeof dow, s->dow, 0, 6, 0, 1);
        strcat(dow, " ");
    }
    component(mon, sizeof mon, s->month, 1, 12, full(s->month, 1, 12), 0);
    component(dom, sizeof dom, s->dom, 1, 31, !use_dom || full(s->dom, 1, 31), 0);
    component(hour, sizeof hour, s->hour, 0, 23, 0, 0);
    component(min, sizeof min, s->minute, 0, 59, 0, 0);
    int w = snprintf(out, n, "%s*-%s-%s %s:%s:00%s%s", dow, mon, dom, hour, min, tz ? " " : "",
                     tz ? tz : "");
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

int rb_schedule_oncalendar(const rb_schedule *s, const char *tz, char out[2][512])
{
    if (s->dom_star || s->dow_star)
        return line(out[0], 512, s, 1, 1, tz) == 0 ? 1 : -1;
    /* both day fields restricted: cron runs on either, a timer on any line */
    if (line(out[0], 512, s, 1, 0, tz) != 0 || line(out[1], 512, s, 0, 1, tz) != 0)
        return -1;
    return 2;
}
