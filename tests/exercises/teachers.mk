# tests/exercises/teachers.mk - the teachers' kit: the sandbox students' code is graded
# in (tests/exercises/sandbox.bash), a class graded at once (tests/exercises/grade).

# bubblewrap (bwrap) makes the sandbox's namespaces.
EXTRA_PACKAGES += bubblewrap

## handout: the students' copy of the lab in DIR=PATH: no reference or wrong solutions
.PHONY: handout
handout:
	@[ -n "$(DIR)" ] || { echo "usage: make handout DIR=PATH (a new folder)" >&2; exit 2; }
	@tests/exercises/handout "$(DIR)"

## gradescope: a Gradescope autograder for exercise EX=ID in OUT=FILE.zip
.PHONY: gradescope
gradescope:
	@[ -n "$(EX)" ] && [ -n "$(OUT)" ] || { echo "usage: make gradescope EX=ID OUT=FILE.zip (make exercises lists the IDs)" >&2; exit 2; }
	@tests/exercises/gradescope "$(EX)" "$(OUT)"
