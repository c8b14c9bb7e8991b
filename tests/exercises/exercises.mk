# tests/exercises/exercises.mk - the code exercises and their graders (tests/exercises/).

## exercises: one line per exercise: its ID, its step and its one-line task
## check-exercise: grade exercise EX=ID, on your copy, the step's file or SRC=PATH; score: X/Y, N passed, M failed

.PHONY: exercises check-exercise

exercises:
	@tests/exercises/list

# shell_quoted TEXT - TEXT as one word of a shell command line, whatever it holds
# (spaces, quotes): in single quotes, each single quote written as '\''.
shell_quoted = '$(subst ','\'',$(1))'

# The step-6 exercises link the framework, which `all` builds.
check-exercise: all
	@[ -n "$(EX)" ] || { echo "usage: make check-exercise EX=ID [SRC=PATH] (make exercises lists the IDs)" >&2; exit 2; }
	@tests/exercises/check $(call shell_quoted,$(EX)) $(if $(SRC),$(call shell_quoted,$(SRC)))
