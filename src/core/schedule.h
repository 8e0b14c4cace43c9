/*
 * A runbook's `schedule` metadata: parsed once, here, for `runbook check`
 * (validation), `runbook schedule --emit` (systemd OnCalendar= and a
 * Kubernetes CronJob's cron field) and `runbook schedule --list` (the next
 * run).  Values: hourly, daily, weekly, monthly (at a time derived from the
 * runbook's name, so a library's daily runbooks do not all start at
 * midnight), a 5-field cron expression or @hourly/@daily/@weekly/@monthly/
 * @yearly (exactly cron's meaning), and "on demand" / "manual" (declared
 * unscheduled).  Pure C: no Lua, no I/O.
 */
#ifndef RUNBOOK_SCHEDULE_H
#define RUNBOOK_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct rb_schedule {
    uint64_t minute; /* bit m set: minute m (0-59) */
    uint32_t hour;   /* bit h: hour h (0-23) */
    uint32_t dom;    /* bit d: day of month d (1-31) */
    uint16_t month;  /* bit m: month m (1-12) */
    uint8_t dow;     /* bit d: weekday d (0 Sunday - 6 Saturday) */
    int dom_star;    /* the field began with '*': cron ANDs the two day fields */
    int dow_star;    /* then; when both are restricted it ORs them */
    char cron[160];  /* the schedule as 5 cron fields (keywords resolved) */
} rb_schedule;

enum { RB_SCHEDULE_NONE = 1 }; /* "on demand": valid, not scheduled */

/* Parse text for the runbook called name (the name picks the time of a
 * keyword).  Returns 0 (s filled), RB_SCHEDULE_NONE, or -1 with a message
 * in err that names the faulty field and the accepted forms. */
int rb_schedule_parse(const char *text, const char *name, rb_schedule *s, char *err, size_t n);

/* The first run strictly after `after`, in local time (TZ); (time_t)-1 when
 * the schedule never fires within eight years (e.g. "0 0 30 2 *"). */
time_t rb_schedule_next(const rb_schedule *s, time_t after);

/* systemd OnCalendar= values for s (one, or two when cron ORs the day
 * fields: a timer fires on any of its OnCalendar= lines); tz, when not
 * NULL, is appended as systemd.time(7) allows.  Returns how many were
 * written into out[0..1], or -1 when a value would not fit. */
int rb_schedule_oncalendar(const rb_schedule *s, const char *tz, char out[2][512]);

#endif
