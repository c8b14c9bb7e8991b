# tests/fuzz/fuzz.mk - `make fuzz`: libFuzzer targets, for the root Makefile.
#
#   make fuzz                  each target for FUZZ_SECONDS (default 60), one after the other
#   make fuzz FUZZ_SECONDS=10
#
# Targets (clang -fsanitize=fuzzer,address,undefined, built under tests/fuzz/build):
#   fuzz_ftp_frames  the file server's frames and JSON headers: its own handler, over a
#                    socketpair, in a scratch folder (tests/fuzz/fuzz_ftp_frames.c)
#   fuzz_rfile       the framework's rfile_readline / rfile_read / rfile_read1 over a
#                    socketpair fed in random pieces, every promise checked
# Each starts from its seed corpus, tests/fuzz/corpus/TARGET (kept in the repository,
# never written to); what it finds on the way goes to tests/fuzz/build/corpus/TARGET, and
# a crashing input to tests/fuzz/build/crash-* (run the target on that file to replay it).

## fuzz: run each libFuzzer target for FUZZ_SECONDS (default 60)
## fuzz-deps: install clang and its fuzzer runtime
## fuzz-clean: remove the fuzzers' build

FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_DIR := tests/fuzz
FUZZ_BUILD := $(FUZZ_DIR)/build
FUZZ_TARGETS := fuzz_ftp_frames fuzz_rfile
FUZZ_FLAGS := -std=c11 -g -O1 -pthread -fno-omit-frame-pointer \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
clean: fuzz-clean
.PHONY: fuzz-clean
fuzz-clean:
	rm -rf $(FUZZ_BUILD)

.PHONY: fuzz fuzz-deps

# clang and its libFuzzer runtime are not on a fresh machine: Debian 12's names.
FUZZ_PACKAGES := clang libclang-rt-14-dev libcjson-dev pkg-config
fuzz-deps:
	@tests/deps.sh $(FUZZ_PACKAGES)

# The program layer ftpserver.c links with (programs.mk's STEP6_PROGRAM_OBJECTS, as sources).
FUZZ_PROGRAM_LAYER := $(addprefix step6_socketserver/,program.c program_options.c \
    program_defences.c program_session.c)
$(FUZZ_BUILD)/fuzz_ftp_frames: $(FUZZ_DIR)/fuzz_ftp_frames.c step6_socketserver/ftpserver.c \
    step6_socketserver/transfer.c step6_socketserver/transfer.h \
    $(FUZZ_PROGRAM_LAYER) step6_socketserver/program.h \
    $(STEP6_SOURCES) step6_socketserver/socketserver.h | fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< step6_socketserver/transfer.c $(FUZZ_PROGRAM_LAYER) \
	    $(STEP6_SOURCES) $(shell pkg-config --cflags --libs libcjson)

$(FUZZ_BUILD)/fuzz_rfile: $(FUZZ_DIR)/fuzz_rfile.c \
    $(STEP6_SOURCES) step6_socketserver/socketserver.h | fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(STEP6_SOURCES)

fuzz: $(addprefix $(FUZZ_BUILD)/,$(FUZZ_TARGETS))
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang (apt-get install clang)" >&2; exit 1; }
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  ASAN_OPTIONS=detect_leaks=1 $(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=10 -max_len=65536 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/ \
	    $(FUZZ_BUILD)/corpus/$$t $(FUZZ_DIR)/corpus/$$t 2>$(FUZZ_BUILD)/$$t.log \
	    || { tail -n 60 $(FUZZ_BUILD)/$$t.log >&2; echo "fuzz: $$t FAILED (log: $(FUZZ_BUILD)/$$t.log)" >&2; exit 1; }; \
	  grep -E '^stat::number_of_executed_units|^Done' $(FUZZ_BUILD)/$$t.log; \
	done
