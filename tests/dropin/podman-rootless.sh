#!/bin/bash
# Drop-in test: rootless podman as a user made for the test, with podman's defaults for it (podman.sh --rootless).
#   tests/dropin/podman-rootless.sh [RUNTIME]   (default: runc)
exec /bin/bash "$(dirname "$0")/podman.sh" --rootless "$@"
