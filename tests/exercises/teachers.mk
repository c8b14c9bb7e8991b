# tests/exercises/teachers.mk - the teachers' kit: the sandbox students' code is graded
# in (tests/exercises/sandbox.bash), a class graded at once (tests/exercises/grade).

# bubblewrap (bwrap) makes the sandbox's namespaces.
EXTRA_PACKAGES += bubblewrap
