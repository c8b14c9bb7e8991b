"""results.py CHECK POINTS - Gradescope's results.json from the grader's output.

CHECK is what tests/exercises/check --verbose printed: a line per criterion (`passed: ID -
...`, `failed: ID - ... (hint: ...)`, `not run: ID - ...`, `skipped: ID - ...`), each
failure followed by what the grader saw (lines beginning `    | `). POINTS has a line
`ID POINTS` per criterion. The build is a test worth nothing; a criterion that has no line
(the build failed, or no file was submitted) scores nothing and says why. Only the grader writes CHECK: the
student's build and server write into files of their own, inside the sandbox.
"""
import json
import re
import sys

RESULT = re.compile(r"^(passed|failed|not run|skipped): (\S+) - (.*)$")


def blocks(lines):
    """Each criterion's line and the evidence after it, by criterion; the other lines."""
    found, other, current = {}, [], None
    for line in lines:
        match = RESULT.match(line)
        if match:
            current = match.group(2)
            found[current] = {"status": match.group(1), "line": line, "evidence": []}
        elif line.startswith("    | ") and current:
            found[current]["evidence"].append(line[6:])
        else:
            current = None
            other.append(line)
    return found, other


def test(name, points, found):
    """One entry of tests[]: the criterion's points when it passed, its evidence always."""
    result = found.get(name)
    if result is None:
        built = found.get("builds", {}).get("status")
        status, title = "failed", name
        output = ("not run: the build failed" if built == "failed" else
                  "not run: the grader did not get this far (see the output above)")
    else:
        status = "passed" if result["status"] == "passed" else "failed"
        output = "\n".join([result["line"]] + result["evidence"])
        title = result["line"].split(": ", 1)[1].split(" (hint: ")[0]
        if result["status"] not in ("passed", "failed"):
            title = name  # the line gives the reason it did not run, not what it checks
    return {"name": title, "score": points if status == "passed" else 0,
            "max_score": points, "status": status, "output": output,
            "visibility": "visible"}


def main():
    with open(sys.argv[1], errors="replace") as check:
        found, other = blocks(check.read().splitlines())
    with open(sys.argv[2]) as listing:
        points = [(name, int(value)) for name, value in
                  (line.split() for line in listing if line.strip())]
    tests = [test("builds", 0, found)] + [test(name, value, found) for name, value in points]
    json.dump({"score": sum(entry["score"] for entry in tests),
               "output": "\n".join(other), "tests": tests}, sys.stdout, indent=2)
    print()


main()
