from . import runtime_tests, hooks_tests, config_tests, linux_tests, cli_tests, compat_tests  # noqa: F401 (registers tests)
