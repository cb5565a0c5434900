/* libtrustme-systemd.so: the systemd cgroup driver's D-Bus client (sd-bus), loaded only with
 * --systemd-cgroup so that libsystemd never loads on the cgroupfs path. */
#ifndef TRUSTME_SYSTEMD_PLUGIN_H
#define TRUSTME_SYSTEMD_PLUGIN_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* request: JSON {"op": "start"|"set"|"stop"|"cgroup", "unit": NAME, "properties": [[NAME, SIGNATURE, VALUE], ...],
 *                "user": BOOL}
 *   user:  true: the caller's own systemd instance on its user bus (rootless), else the system's.
 *   start: StartTransientUnit(NAME, "replace", properties) and wait for its job (JobRemoved);
 *          a leftover unit of that name is reset (ResetFailedUnit) and the start retried once.
 *   set:   SetUnitProperties(NAME, runtime=true, properties).
 *   stop:  StopUnit(NAME, "replace"), wait for its job, ResetFailedUnit; an unknown unit is success.
 *   cgroup: the manager's ControlGroup property, written to err on success (NAME unused).
 * Returns 0, or -1 with one line in err. */
int trustme_systemd_call(const char* request, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
