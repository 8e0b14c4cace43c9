/*
 * Table-driven tests of schedule.c: what `schedule` values parse to (the
 * cron form a CronJob gets, the OnCalendar= lines a timer gets), which are
 * refused and why, and next runs in UTC.  tests/cli/test_schedule.py
 * checks the same translations against systemd itself.  Prints
 * "N passed, N failed".
 */
#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int passed, failed;

static void fail(const char *what, const char *fmt, const char *got, const char *want)
{
    failed++;
    fprintf(stderr, "FAIL %s: ", what);
    fprintf(stderr, fmt, got, want);
    fputc('\n', stderr);
}

static const struct {
    const char *text, *cron, *cal1, *cal2;
} VALID[] = {
    {"30 2 * * 1-5", "30 2 * * 1-5", "Mon..Fri *-*-* 02:30:00", NULL},
    {"*/20  9-17 * * *", "*/20 9-17 * * *", "*-*-* 09..17:00,20,40:00", NULL},
    {"0 0 13 * 5", "0 0 13 * 5", "*-*-13 00:00:00", "Fri *-*-* 00:00:00"},
    {"15 12 1 jan,jul *", "15 12 1 jan,jul *", "*-01,07-01 12:15:00", NULL},
    {"0 6 * * sun,7", "0 6 * * sun,7", "Sun *-*-* 06:00:00", NULL},
    {"0 6 * * 0,6", "0 6 * * 0,6", "Sun,Sat *-*-* 06:00:00", NULL},
    {"0 0 */2 * mon", "0 0 */2 * mon",
     "Mon *-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 "
     "00:00:00",
     NULL},
    {"@weekly", "0 0 * * 0", "Sun *-*-* 00:00:00", NULL},
    {"@yearly", "0 0 1 1 *", "*-01-01 00:00:00", NULL},
    {"0 0 29 2 *", "0 0 29 2 *", "*-02-29 00:00:00", NULL}, /* leap days only: still fires */
};

static const struct {
    const char *text, *why;
} INVALID[] = {
    {"", "empty"},
    {"every day", "got 2 fields"},
    {"0 0 * * * *", "got 6 fields"},
    {"60 * * * *", "minute field '60': out of range 0-59"},
    {"0 24 * * *", "hour field '24': out of range 0-23"},
    {"0 0 0 * *", "day of month field '0': out of range 1-31"},
    {"0 0 * 13 *", "month field '13': out of range 1-12"},
    {"0 0 * * 8", "day of week field '8': out of range 0-7"},
    {"5-1 * * * *", "out of range"},
    {"*/0 * * * *", "minute field '*/0'"},
    {"5/15 * * * *", "write a range before the step"},
    {"0 0 L * *", "not standard cron"},
    {"0 0 ? * *", "not standard cron"},
    {"0 0 * * 1#2", "not standard cron"},
    {"0 0 30 2 *", "never fires"},
    {"0 0 31 4,6,9,11 *", "never fires"},
    {"@reboot", "not a time"},
    {"0 0 * foo *", "month field 'foo'"},
};

static void valid_rows(void)
{
    for (size_t i = 0; i < sizeof VALID / sizeof *VALID; i++) {
        rb_schedule s;
        char err[512], cal[2][512];
        if (rb_schedule_parse(VALID[i].text, "t/x", &s, err, sizeof err) != 0) {
            fail(VALID[i].text, "refused: %s%s", err, "");
            continue;
        }
        int n = rb_schedule_oncalendar(&s, NULL, cal);
        int want = VALID[i].cal2 ? 2 : 1;
        if (strcmp(s.cron, VALID[i].cron) != 0)
            fail(VALID[i].text, "cron '%s', want '%s'", s.cron, VALID[i].cron);
        else if (n != want || strcmp(cal[0], VALID[i].cal1) != 0)
            fail(VALID[i].text, "OnCalendar '%s', want '%s'", n > 0 ? cal[0] : "-", VALID[i].cal1);
        else if (want == 2 && strcmp(cal[1], VALID[i].cal2) != 0)
            fail(VALID[i].text, "second OnCalendar '%s', want '%s'", cal[1], VALID[i].cal2);
        else
            passed++;
    }
}

static void invalid_rows(void)
{
    for (size_t i = 0; i < sizeof INVALID / sizeof *INVALID; i++) {
        rb_schedule s;
        char err[512] = "";
        int rc = rb_schedule_parse(INVALID[i].text, "t/x", &s, err, sizeof err);
        if (rc != -1)
            fail(INVALID[i].text, "accepted (%s), want '%s'", s.cron, INVALID[i].why);
        else if (!strstr(err, INVALID[i].why))
            fail(INVALID[i].text, "message '%s', want '%s'", err, INVALID[i].why);
        else
            passed++;
    }
}

static void keywords(void)
{
    rb_schedule s, again, other;
    char err[512], cal[2][512];
    /* on demand: valid, not scheduled */
    if (rb_schedule_parse("on demand", "t/x", &s, err, sizeof err) == RB_SCHEDULE_NONE &&
        rb_schedule_parse("manual", "t/x", &s, err, sizeof err) == RB_SCHEDULE_NONE)
        passed++;
    else
        fail("on demand", "not RB_SCHEDULE_NONE%s%s", "", "");
    /* daily: one fixed time per name, in 00:00-05:59, a timezone appended */
    int m, h;
    if (rb_schedule_parse("daily", "team/check", &s, err, sizeof err) != 0 ||
        rb_schedule_parse("daily", "team/check", &again, err, sizeof err) != 0 ||
        sscanf(s.cron, "%d %d * * *", &m, &h) != 2 || strcmp(s.cron, again.cron) != 0 || h > 5 ||
        m > 59 || rb_schedule_oncalendar(&s, "Europe/Paris", cal) != 1 ||
        !strstr(cal[0], " Europe/Paris"))
        fail("daily", "cron '%s' / OnCalendar '%s'", s.cron, cal[0]);
    else
        passed++;
    int differ = 0;
    const char *names[] = {"a/one", "a/two", "a/three", "b/four"};
    for (int i = 0; i < 4; i++) {
        rb_schedule_parse("daily", names[i], &other, err, sizeof err);
        differ += strcmp(other.cron, s.cron) != 0;
    }
    if (differ >= 3)
        passed++;
    else
        fail("daily", "names do not spread: %s%s", s.cron, "");
    if (rb_schedule_parse("weekly", "t/x", &s, err, sizeof err) == 0 &&
        strcmp(s.cron + strlen(s.cron) - 5, "* * 1") == 0 &&
        rb_schedule_parse("monthly", "t/x", &s, err, sizeof err) == 0 &&
        strcmp(s.cron + strlen(s.cron) - 5, "1 * *") == 0)
        passed++;
    else
        fail("weekly/monthly", "cron '%s'%s", s.cron, "");
}

static void next_runs(void)
{
    static const struct {
        const char *text;
        time_t from, want;
    } rows[] = {
        /* Mon 2026-03-02 10:00 UTC */
        {"30 2 * * 1-5", 1772445600, 1772505000},    /* Tue 03-03 02:30 */
        {"0 0 13 * 5", 1772445600, 1772755200},      /* Fri 03-06: the weekday wins first */
        {"0 0 29 2 *", 1772445600, 1835395200},      /* 2028-02-29 */
        {"*/20 9-17 * * *", 1772445600, 1772446800}, /* 10:20: strictly after */
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        rb_schedule s;
        char err[512], got[32], want[32];
        rb_schedule_parse(rows[i].text, "t/x", &s, err, sizeof err);
        time_t t = rb_schedule_next(&s, rows[i].from);
        if (t == rows[i].want) {
            passed++;
            continue;
        }
        snprintf(got, sizeof got, "%lld", (long long)t);
        snprintf(want, sizeof want, "%lld", (long long)rows[i].want);
        fail(rows[i].text, "next %s, want %s", got, want);
    }
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    valid_rows();
    invalid_rows();
    keywords();
    next_runs();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
