# tests/sanitize/sanitize.mk - the sanitizer passes, for the root Makefile.
#
#   make asan    AddressSanitizer + UndefinedBehaviorSanitizer: every program built in a
#                temporary copy of the tree, then every bats suite run against it; any
#                report fails (10 minutes on the 2-core reference machine)
#   make tsan    ThreadSanitizer over the threaded programs: step 4, step-6 threading
#                mode, the framework's unit tests (--no-fork); tests that count threads
#                are left out, and listed (a few minutes)
#
# Neither touches the normal binaries; see tests/sanitize/run. gcc's runtimes (libasan,
# libubsan, libtsan) come with Debian's gcc; nothing more is installed.

## asan: every suite against AddressSanitizer + UBSan builds
## tsan: the threaded programs' suites against ThreadSanitizer builds

.PHONY: asan tsan

asan: deps
	tests/sanitize/run address

tsan: deps
	tests/sanitize/run thread
