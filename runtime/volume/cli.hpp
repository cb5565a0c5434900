// `trustme-runtime volume create|enroll|inspect` (trustme-runtime-volume(8)).
#pragma once

namespace trustme::volume {

// argv[0] is "volume". Prints errors as one line on stderr; returns the exit code (0, 1 error, 2 usage).
int volume_main(int argc, char** argv);

}  // namespace trustme::volume
