# tests/exercises/workspace.mk - an exercise made in a copy, so that the lesson stays whole
# (tests/exercises/workspace does the work).
#
#   make exercise-start EX=ID   copies the exercise's file to exercises-work/ID/ (git ignores it)
#   make check-exercise EX=ID   then grades that copy (SRC=PATH grades another file)
#   make exercise-run EX=ID [ARGS='--port 9999 ...']   builds the copy and runs it
#   make exercise-reset EX=ID   puts the copy back to the lesson's file
#   make exercise-undo [EX=ID]  after an exercise made in the lesson's own file: that file
#                               as committed again, your version saved in exercises-work/undone/

## exercise-start: copy exercise EX=ID's file to exercises-work/ID/, where check-exercise grades it
## exercise-run: build exercise EX=ID's copy and run it (ARGS='--port 9999' by default)
## exercise-build: build exercise EX=ID's copy (or SRC=PATH) as the grader does, into exercises-work/ID/server (or OUT=PATH)
## exercise-reset: put exercises-work/ID/'s copy back to the lesson's file (EX=ID)
## exercise-undo: the lesson's files as committed again (EX=ID: that exercise's), your changes saved

.PHONY: exercise-start exercise-build exercise-run exercise-reset exercise-undo

# check-exercise (exercises.mk) grades $(SRC): the copy, once exercise-start has made it.
SRC ?= $(wildcard exercises-work/$(EX)/*.c)

EXERCISE_USAGE := usage: make exercise-start|exercise-run|exercise-reset EX=ID (make exercises lists the IDs)

exercise-start exercise-reset:
	@[ -n "$(EX)" ] || { echo "$(EXERCISE_USAGE)" >&2; exit 2; }
	@tests/exercises/workspace $(patsubst exercise-%,%,$@) $(EX)

exercise-undo:
	@tests/exercises/workspace undo $(EX)

# The step-6 exercises link the framework's program layer, which `all` builds.
exercise-build: all
	@[ -n "$(EX)" ] || { echo "$(EXERCISE_USAGE)" >&2; exit 2; }
	@CC="$(CC)" CFLAGS="$(CFLAGS)" STEP6_LINK="$(abspath $(STEP6_PROGRAM_OBJECTS) $(STEP6_LIB))" \
	  tests/exercises/workspace build $(EX) $(SRC) $(OUT)

exercise-run: exercise-build
	@exec exercises-work/$(EX)/server $(or $(ARGS),--port 9999)
