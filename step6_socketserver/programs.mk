# step6_socketserver/programs.mk - the four step-6 programs, for the root Makefile to
# include after build.mk (which defines the library, STEP6_DIR and STEP6_LIB).
#
# Each program is one .c file and the shared program layer (STEP6_PROGRAM_OBJECTS: the
# server, options, defences, session and logs), linked with the framework; ftpserver also links transfer.o (its frames and folder) and cJSON,
# which pkg-config finds once `make deps` has installed libcjson-dev.

STEP6_PROGRAM_NAMES := upper callcenter ftpserver threadname
STEP6_PROGRAMS += $(addprefix $(STEP6_DIR)/,$(STEP6_PROGRAM_NAMES))
STEP6_PACKAGES += pkg-config libcjson-dev
STEP6_PROGRAM_OBJECTS := $(addprefix $(STEP6_DIR)/,program.o program_options.o \
    program_defences.o program_session.o)
STEP6_CLEAN += $(addprefix $(STEP6_DIR)/,$(STEP6_PROGRAM_NAMES) transfer.o) \
               $(STEP6_PROGRAM_OBJECTS)

# Expanded when the recipe runs, so after `make deps` in the same make.
STEP6_CJSON = $(shell pkg-config --cflags --libs libcjson 2>/dev/null)

$(STEP6_PROGRAM_OBJECTS): %.o: %.c $(STEP6_DIR)/program.h $(STEP6_HEADERS)
	$(CC) $(CFLAGS) -c -o $@ $<

$(addprefix $(STEP6_DIR)/,upper callcenter threadname): %: %.c $(STEP6_PROGRAM_OBJECTS) \
    $(STEP6_DIR)/program.h $(STEP6_HEADERS) $(STEP6_LIB)
	$(CC) $(CFLAGS) -o $@ $< $(STEP6_PROGRAM_OBJECTS) $(STEP6_LIB)

$(STEP6_DIR)/transfer.o: $(STEP6_DIR)/transfer.c $(STEP6_DIR)/transfer.h $(STEP6_DIR)/program.h \
    $(STEP6_HEADERS)
	@[ -n "$(STEP6_CJSON)" ] || { echo "$@ needs cJSON, which pkg-config cannot find: run make deps" >&2; exit 1; }
	$(CC) $(CFLAGS) $(filter -I%,$(STEP6_CJSON)) -c -o $@ $<

$(STEP6_DIR)/ftpserver: $(STEP6_DIR)/ftpserver.c $(STEP6_DIR)/transfer.o $(STEP6_PROGRAM_OBJECTS) \
    $(STEP6_DIR)/transfer.h $(STEP6_DIR)/program.h $(STEP6_HEADERS) $(STEP6_LIB)
	$(CC) $(CFLAGS) -o $@ $< $(STEP6_DIR)/transfer.o $(STEP6_PROGRAM_OBJECTS) $(STEP6_LIB) \
	    $(STEP6_CJSON)
