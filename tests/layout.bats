#!/usr/bin/env bats
# passes: plain
# The repository's shape: step 6's framework stays in files a reader takes in at one
# sitting (none over 900 lines, no function over 80), and the documents name only paths
# the repository holds, or that its Makefile builds.

load helpers

# Each C function of the files named: "FILE:LINE NAME LENGTH", its length counted from
# the first line of its signature to its closing brace. Comments, strings and character
# constants are taken out before the braces are counted; a brace block whose opening
# line holds "=" (a table) is no function.
function_lengths() {
  awk '
    FNR == 1 { depth = 0; in_comment = 0; sig = 0 }
    {
      line = $0
      if (in_comment) {
        if (sub(/^.*\*\//, "", line)) in_comment = 0; else next
      }
      gsub(/\/\*.*\*\//, "", line)
      if (sub(/\/\*.*$/, "", line)) in_comment = 1
      sub(/\/\/.*$/, "", line)
      gsub(/"([^"\\]|\\.)*"/, "\"\"", line)
      gsub(/'\''([^'\''\\]|\\.)*'\''/, "0", line)
      if (depth == 0 && sig == 0 && line ~ /^[^ \t#}].*\(/) { sig = FNR; name = line }
      if (depth == 0 && line ~ /;[ \t]*$/) sig = 0
      opens = gsub(/\{/, "{", line); closes = gsub(/\}/, "}", line)
      if (depth == 0 && opens > 0) { is_function = sig > 0 && name !~ /=/; start = sig }
      depth += opens - closes
      if (depth == 0 && (opens || closes)) {
        if (is_function) {
          sub(/\(.*/, "", name); n = split(name, word, /[ \t*]+/)
          print FILENAME ":" start, word[n], FNR - start + 1
        }
        is_function = 0; sig = 0
      }
    }' "$@"
}

@test "step 6: no source file over 900 lines (the unit tests aside)" {
  local file lines long=()
  for file in "$LAB"/step6_socketserver/*.[ch]; do
    [[ $file == */test_socketserver.c ]] && continue
    lines=$(wc -l <"$file")
    ((lines <= 900)) || long+=("${file#"$LAB"/}: $lines lines")
  done
  [ "${#long[@]}" -eq 0 ] || fail "$(printf '%s\n' "${long[@]}")"
}

@test "step 6: no function over 80 lines" {
  run function_lengths "$LAB"/step6_socketserver/*.c
  assert_success
  # The counter sees the functions it must: every file's, a two-line signature's too.
  assert_line --regexp "/socketserver\.c:[0-9]+ server_new_unbound [0-9]+$"
  assert_line --regexp "/program_options\.c:[0-9]+ program_parse [0-9]+$"
  assert_line --regexp "/program_options\.c:[0-9]+ check_options_fit [0-9]+$"
  local long
  long=$(awk '$3 > 80' <<<"$output")
  [ -z "$long" ] || fail "functions over 80 lines (FILE:LINE NAME LINES): $long"
}

@test "the function counter counts: a long function, a table and braces in strings" {
  local c=$BATS_TEST_TMPDIR/sample.c
  {
    printf '%s\n' 'static const int table[] = {' '  1, 2,' '};' '' \
      'static int longest(int a,' '                   int b) {' '  /* { not a brace */' \
      '  const char *s = "}{";' "  char c = '{';"
    for i in $(seq 1 80); do printf '  a += %d;\n' "$i"; done
    printf '%s\n' '  return a + b + s[0] + c;' '}' 'void short_one(void) { }'
  } >"$c"
  run function_lengths "$c"
  assert_success
  assert_output "$(printf '%s\n' "$c:5 longest 87" "$c:92 short_one 1")"
}

# left_out_of_handout PATH - PATH is a file, or a folder of files, that make handout left
# out of this copy of the lab (tests/exercises/omitted lists them there).
left_out_of_handout() {
  [ -f tests/exercises/omitted ] && grep -qE "^$1(/|$)" tests/exercises/omitted
}

@test "the documents name only paths the repository holds" {
  cd "$LAB"
  local doc path missing=()
  for doc in README.md TUTORIAL.md tests/README.md step*/README.md tests/exercises/README.md \
    tests/bench/RESULTS.md; do
    # Paths from the root (step6_socketserver/upper.c, tests/demo/step2.sh, .ci/run), and
    # the targets of Markdown links, which are relative to the document's folder. A path
    # with a wildcard or a capital-letter placeholder (tests/exercises/ID/task.md,
    # tests/tutorial/naive/NAME.patch) names no one file.
    while read -r path; do
      [[ $path == *[*{}]* || $path =~ /[A-Z]+(\.[a-z]+)?(/|$) ]] && continue
      [ -e "$path" ] || make -s -n "$path" >/dev/null 2>&1 || left_out_of_handout "$path" ||
        missing+=("$doc: $path")
    done < <(grep -oE '(\.ci|tests|step[1-6]_[a-z]+)/[A-Za-z0-9_.*/{}-]*[A-Za-z0-9_]' "$doc" | sort -u)
    while read -r path; do
      [ -e "$(dirname "$doc")/$path" ] || missing+=("$doc: $path")
    done < <(grep -oE '\]\([^)#: ]+' "$doc" | cut -c3- | sort -u)
  done
  [ "${#missing[@]}" -eq 0 ] || fail "$(printf 'not in the repository: %s\n' "${missing[@]}")"
}
